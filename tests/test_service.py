"""The service on 127.0.0.1: auth, a build job end to end, restart safety, the crawl-target guard,
path traversal, and a bounded property-based run against its OpenAPI-typed endpoints."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from edge_site import Site, linear_routes
from served import free_port, wait_until_up

TOKEN = "test-token-4f1c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Service:
    def __init__(self, workspace: Path, *extra: str) -> None:
        self.workspace, self.extra = workspace, extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Service:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "corpusmill",
                "serve",
                "--port",
                str(self.port),
                "--workspace",
                str(self.workspace),
                *self.extra,
            ],
            env={**os.environ, "CORPUSMILL_TOKEN": TOKEN},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_up(f"{self.url}/health")
        return self

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, headers=AUTH, timeout=30, **kw)

    def post(self, path: str, body: dict) -> httpx.Response:
        return httpx.post(self.url + path, headers=AUTH, json=body, timeout=30)

    def wait(self, job_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.3)
        raise TimeoutError(job_id)


def build_config(rows: int, slow: float = 0.0) -> dict:
    clean = [{"step": "normalize"}, {"step": "exact_dedup"}]
    return {
        "seed": 1,
        "sources": [{"type": "csv", "path": "inputs/questions.csv", "label": "category"}],
        "clean": clean,
        "release": {"name": "svc", "version": "1"},
    }


@pytest.fixture
def workspace(shared_data, tmp_path) -> Path:
    (tmp_path / "ws" / "inputs").mkdir(parents=True)
    shutil.copyfile(shared_data / "banking77" / "train.csv", tmp_path / "ws" / "inputs" / "questions.csv")
    return tmp_path / "ws"


def test_auth_build_download_and_path_traversal(workspace):
    service = Service(workspace).start()
    try:
        assert httpx.get(f"{service.url}/jobs").status_code == 401
        assert httpx.get(f"{service.url}/jobs", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(f"{service.url}/openapi.json").status_code == 401  # docs need the token too
        assert service.get("/openapi.json").status_code == 200
        bad = service.post(
            "/jobs", {"kind": "build", "config": {**build_config(0), "split": {"ratios": {"train": 1.2}}}}
        )
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:4] == ["body", "config", "split", "ratios"]
        job = service.post("/jobs", {"kind": "build", "config": build_config(0)}).json()
        done = service.wait(job["id"])
        assert done["state"] == "succeeded", service.get(f"/jobs/{job['id']}/log").text
        segments = ["00.read.questions", "01.clean.exact_dedup", "02.split.stratified"]
        assert done["progress"]["segments_done"] == segments
        assert done["progress"]["records_out"]["00.read.questions"] == 10_003
        # The executor answers for its own work dir, wherever a config puts it.
        elsewhere = {**build_config(0), "release": {"name": "svc", "version": "2"}, "work_dir": "scratch/w2"}
        moved = service.wait(service.post("/jobs", {"kind": "build", "config": elsewhere}).json()["id"])
        assert moved["state"] == "succeeded" and moved["progress"]["segments_done"] == segments
        assert (workspace / "scratch" / "w2" / "02.split.stratified" / "_DONE.json").exists()
        release = service.get("/releases/svc/1").json()
        listed = service.get("/releases").json()
        assert [(r["name"], r["version"]) for r in listed] == [("svc", "1"), ("svc", "2")]
        assert listed[0]["splits"] == {s: info["records"] for s, info in release["manifest"]["splits"].items()}
        assert httpx.delete(f"{service.url}/jobs/{job['id']}", headers=AUTH).status_code == 409  # finished
        assert httpx.delete(f"{service.url}/jobs/no-such-job", headers=AUTH).status_code == 404
        for name, info in release["manifest"]["files"].items():
            response = service.get(f"/releases/svc/1/files/{name}")
            assert response.status_code == 200
            assert (
                hashlib.sha256(response.content).hexdigest() == info["sha256"] == response.headers["x-checksum-sha256"]
            )
        for path in (
            "/releases/svc/1/files/../../../jobs.sqlite",
            "/releases/svc/1/files/%2e%2e/%2e%2e/jobs.sqlite",
            "/releases/../1",
            "/releases/svc/1/files//etc/passwd",
            "/releases/svc/..%2f..%2f/files/x",
        ):
            assert service.get(path).status_code in (404, 422), path
        absolute = service.post(
            "/jobs",
            {"kind": "build", "config": {**build_config(0), "sources": [{"type": "csv", "path": "/etc/passwd"}]}},
        )
        assert absolute.status_code == 422
        huge = httpx.post(
            f"{service.url}/jobs",
            headers={**AUTH, "Content-Type": "application/json"},
            content=b"{" + b" " * 2_000_000 + b"}",
            timeout=30,
        )
        assert huge.status_code == 413
    finally:
        service.stop()


def test_killed_service_resumes_the_job_and_ends_with_the_same_release(workspace, tmp_path, shared_data):
    reference_ws = tmp_path / "ref"
    (reference_ws / "inputs").mkdir(parents=True)
    shutil.copyfile(workspace / "inputs" / "questions.csv", reference_ws / "inputs" / "questions.csv")
    config = {
        **build_config(0),
        "clean": [
            {"step": "normalize"},
            {"step": "near_dedup", "shingle": "chars", "shingle_size": 4, "threshold": 0.7},
        ],
    }
    reference = Service(reference_ws).start()
    try:
        done = reference.wait(reference.post("/jobs", {"kind": "build", "config": config}).json()["id"])
        assert done["state"] == "succeeded"
    finally:
        reference.stop()

    service = Service(workspace).start()
    job = service.post("/jobs", {"kind": "build", "config": config}).json()
    deadline = time.monotonic() + 120
    while (
        service.get(f"/jobs/{job['id']}").json()["state"] != "running"
        or not (workspace / ".corpusmill" / "work" / "svc-1" / "00.read.questions" / "_DONE.json").exists()
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    service.kill()  # the service and its job process, mid-build
    assert not (workspace / "releases" / "svc" / "1").exists()
    service = Service(workspace).start()
    try:
        done = service.wait(job["id"])
        assert done["state"] == "succeeded" and done["attempts"] == 2
        # the restarted job took the segments finished before the kill from their checkpoints
        assert "00.read.questions" in done["result"]["resumed"]
    finally:
        service.stop()
    ours = workspace / "releases" / "svc" / "1"
    theirs = reference_ws / "releases" / "svc" / "1"
    for path in sorted(p.relative_to(theirs) for p in theirs.rglob("*") if p.is_file() and p.name != "manifest.json"):
        assert (ours / path).read_bytes() == (theirs / path).read_bytes(), path


def test_a_train_job_fine_tunes_on_a_release_of_the_workspace(workspace):
    """Build a release, then a ``train`` job on it (MiniLM, a few optimizer steps: wiring, not
    learning): the job succeeds with test metrics and a report inside its job directory."""
    service = Service(workspace).start()
    try:
        built = service.wait(service.post("/jobs", {"kind": "build", "config": build_config(0)}).json()["id"])
        assert built["state"] == "succeeded"
        train = {
            "release": "svc/1",
            "task": "classification",
            "model": "minilm",
            "train": {"hyperparameters": {"max_steps": 2, "batch_size": 16, "max_length": 32}},
        }
        job = service.post("/jobs", {"kind": "train", "config": train})
        assert job.status_code == 201, job.text
        done = service.wait(job.json()["id"])
        assert done["state"] == "succeeded", service.get(f"/jobs/{done['id']}/log").text[-2000:]
        assert 0 <= done["result"]["test"]["accuracy"] <= 1 and "macro_f1" in done["result"]["test"]
        report = Path(done["result"]["report"])
        assert report.is_file() and report.is_relative_to(workspace / "jobs")
        runs = {run["run"]: run for run in service.get("/runs").json()}
        run = runs[f"jobs/{done['id']}/model"]  # the web page's training runs
        assert run["test"] == done["result"]["test"] and run["release"]["name"] == "svc"
        page = service.get(f"/ui/runs/{run['run']}")
        assert page.status_code == 200 and f'src="/runs/{run["run"]}/files/confusion_matrix.png"' in page.text
        assert service.get(f"/runs/{run['run']}/files/confusion_matrix.png").content.startswith(b"\x89PNG")
        assert service.get(f"/runs/{run['run']}/files/log.txt").status_code == 404
        assert service.get("/runs/jobs/../../etc/files/report.json").status_code == 404
        missing = service.post("/jobs", {"kind": "train", "config": {**train, "release": "svc/9"}})
        assert missing.status_code == 404  # refused at submission: no such release
    finally:
        service.stop()


def test_crawl_guard_refuses_loopback_unless_allowed(workspace):
    site = Site(linear_routes(pages=5, delay=0))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    crawl = {"kind": "crawl", "config": {"start_urls": [site.url], "fast": True, "out": "site.jsonl"}}
    try:
        guarded = Service(workspace).start()
        try:
            refused = guarded.post("/jobs", crawl)
            assert refused.status_code == 403 and "127.0.0.1" in refused.json()["detail"]
            metadata = guarded.post(
                "/jobs",
                {
                    "kind": "crawl",
                    "config": {"start_urls": ["http://169.254.169.254/latest/meta-data/"], "out": "m.jsonl"},
                },
            )
            assert metadata.status_code == 403
            shared = guarded.post(
                "/jobs", {"kind": "crawl", "config": {**crawl["config"], "redis": "redis://127.0.0.1:6379/0"}}
            )
            assert shared.status_code == 422 and "redis" in shared.text
        finally:
            guarded.stop()
        assert sum(site.requests.values()) == 0
        allowed = Service(workspace, "--allow-private-targets").start()
        try:
            done = allowed.wait(allowed.post("/jobs", crawl).json()["id"])
            assert done["state"] == "succeeded", allowed.get(f"/jobs/{done['id']}/log").text
            assert done["result"]["stats"]["pages_written"] == 5
        finally:
            allowed.stop()
    finally:
        site.shutdown()
        site.server_close()


def test_no_token_refuses_a_non_loopback_address(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CORPUSMILL_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "corpusmill", "serve", "--host", "0.0.0.0", "--workspace", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "refusing to listen on 0.0.0.0" in result.stderr


def test_property_based_requests_never_get_a_500(tmp_path):
    from fastapi.testclient import TestClient
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from corpusmill.service import create_app

    app = create_app(tmp_path, TOKEN)
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
        max_leaves=10,
    )
    kinds = st.sampled_from(["build", "crawl", "train", "other"])
    configs = st.dictionaries(
        st.sampled_from(
            ["sources", "clean", "split", "release", "start_urls", "out", "task", "model", "release", "seed", "x"]
        ),
        json_values,
        max_size=5,
    )
    segment = st.text(
        alphabet=st.characters(
            min_codepoint=33, max_codepoint=0x2FFF, blacklist_categories=["Cs", "Cc"], blacklist_characters="/?#%\\"
        ),
        min_size=1,
        max_size=12,
    )

    with TestClient(app, raise_server_exceptions=False) as client:

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(kind=kinds, config=configs, name=segment, version=segment, path=segment)
        def check(kind, config, name, version, path):
            response = client.post("/jobs", headers=AUTH, json={"kind": kind, "config": config})
            assert response.status_code < 500, response.text
            for url in (f"/releases/{name}/{version}", f"/releases/{name}/{version}/files/{path}", f"/jobs/{name}"):
                assert client.get(url, headers=AUTH).status_code < 500, url

        check()
