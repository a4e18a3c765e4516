"""Regression tests for the holes a hostile client or a crash could reach (issue 14): code
execution through a poisoned Redis, SSRF and path escapes through build configs, half-made
releases after a killed service, unbounded bodies, regexes and nesting, orphaned processes."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
from edge_site import Site, crawl_command, linear_routes
from served import wait_until_up
from test_service import AUTH, TOKEN, Service, build_config

from corpusmill.config import parse_config
from corpusmill.errors import ConfigError
from corpusmill.registry import get_step, step_names
from corpusmill.validators import LocalPath, path_values
from crawlers.options import CrawlOptions


class RunsShell:
    """A pickle that runs a shell command when unpickled: what an attacker pushes into Redis."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` in the process tree: what a kill must not leave behind."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def serve(pages: int) -> Site:
    site = Site(linear_routes(pages=pages, delay=0))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    return site


# --- 1. a poisoned shared-crawl queue --------------------------------------------------------


def test_a_poisoned_shared_crawl_queue_is_never_unpickled(tmp_path, redis_url):
    marker = tmp_path / "pwned"
    site = serve(5)
    try:
        key = CrawlOptions(start_urls=[site.url], max_depth=200).shared_key()
        client = redis.Redis.from_url(redis_url)
        client.lpush(f"{key}:requests", pickle.dumps(RunsShell(f"touch {marker}")))
        client.lpush(f"{key}:requests", b'{"url": "http://x/", "method": "DELETE"}')
        command = crawl_command(site.url, str(tmp_path / "out.jsonl"), "--redis", redis_url, "--worker-timeout", "3")
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    finally:
        site.shutdown()
        site.server_close()
    assert result.returncode == 0, result.stderr[-2000:]
    assert not marker.exists()
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 5  # the crawl itself went on


def test_tokens_are_compared_in_constant_time(tmp_path, monkeypatch):
    """Every token check, header, sign-in form or session cookie (its MAC), goes through
    ``hmac.compare_digest`` (whose time does not depend on where the first differing byte is),
    never ``==``."""
    import hmac

    from fastapi.testclient import TestClient

    from corpusmill.service import create_app

    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with TestClient(create_app(tmp_path, TOKEN)) as client:
        assert client.get("/jobs", headers={"Authorization": f"Bearer {TOKEN[:-1]}x"}).status_code == 401
        assert client.get("/jobs", headers=AUTH).status_code == 200
        assert (f"{TOKEN[:-1]}x".encode(), TOKEN.encode()) in compared
        assert client.post("/session", data={"token": TOKEN}, follow_redirects=False).status_code == 303
        assert compared.count((TOKEN.encode(), TOKEN.encode())) >= 2  # the header and the sign-in form
        compared.clear()
        assert client.get("/jobs").status_code == 200  # the session cookie: its MAC, compared in constant time
        assert any(len(a) == len(b) == 64 and a == b for a, b in compared)
        cookie = client.cookies["corpusmill_session"]
        client.cookies.clear()
        client.cookies.set("corpusmill_session", cookie[:-1] + ("1" if cookie.endswith("0") else "0"))
        assert client.get("/jobs").status_code == 401


def test_service_refuses_redis_anywhere_in_a_config(tmp_path):
    from fastapi.testclient import TestClient

    from corpusmill.service import create_app

    source = {"type": "crawl", "path": "site.jsonl", "start_urls": ["https://example.org/"], "redis": "redis://h/0"}
    with TestClient(create_app(tmp_path, TOKEN)) as client:
        response = client.post(
            "/jobs", headers=AUTH, json={"kind": "build", "config": {**build_config(0), "sources": [source]}}
        )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "config", "sources", "0", "redis"]


# --- 2. SSRF through a build's crawl source -----------------------------------------------------


def test_build_crawl_sources_meet_the_target_guard(tmp_path):
    from fastapi.testclient import TestClient

    from corpusmill.service import create_app
    from corpusmill.service.jobs import JobStore

    site = serve(3)
    source = {"type": "crawl", "path": "site.jsonl", "start_urls": [site.url], "fast": True}
    client = TestClient(create_app(tmp_path, TOKEN))  # no lifespan: jobs are stored, not run

    def submit(*sources):
        return client.post(
            "/jobs", headers=AUTH, json={"kind": "build", "config": {**build_config(0), "sources": list(sources)}}
        )

    try:
        refused = submit(source)
        sitemap = submit({**source, "start_urls": ["https://example.org/"], "sitemaps": [f"{site.url}/sitemap.xml"]})
        metadata = submit({**source, "start_urls": ["http://169.254.169.254/latest/meta-data/"]})
        public = submit({**source, "start_urls": ["https://example.org/"], "block_private_targets": False})
    finally:
        site.shutdown()
        site.server_close()
    assert refused.status_code == 403 and "127.0.0.1" in refused.json()["detail"]
    assert sitemap.status_code == 403 and metadata.status_code == 403
    assert sum(site.requests.values()) == 0
    assert public.status_code == 201
    stored = JobStore(tmp_path / "jobs.sqlite").get(public.json()["id"])
    # the guard runs again on every request and redirect of the crawl, whatever the client sent
    assert stored["config"]["sources"][0]["block_private_targets"] is True

    # The same config written as one steps list gets the same guard and release directory.
    listed = {"release": {"name": "svc", "version": "1", "output_dir": "elsewhere"}, "steps": []}
    listed["steps"] = [
        {"read": "crawl", **{k: v for k, v in source.items() if k != "type"}, "start_urls": ["https://example.org/"]},
        {"write": "release", **listed.pop("release")},
    ]
    answer = client.post("/jobs", headers=AUTH, json={"kind": "build", "config": listed})
    assert answer.status_code == 201, answer.text
    stored = JobStore(tmp_path / "jobs.sqlite").get(answer.json()["id"])["config"]
    assert stored["sources"][0]["block_private_targets"] is True and "steps" not in stored
    assert stored["release"]["output_dir"] == "releases"
    assert client.get(f"/jobs/{answer.json()['id']}", headers=AUTH).status_code == 200
    typo = {"steps": [listed["steps"][0], {"clean": "length", "min_word": 1}, listed["steps"][1]]}
    refused = client.post("/jobs", headers=AUTH, json={"kind": "build", "config": typo})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-3:] == ["steps", "1", "min_word"]


def test_the_request_guard_refuses_private_targets_while_crawling(tmp_path):
    """PrivateTargetGuardMiddleware runs on every request the crawl makes (redirects are new
    requests through the same middleware): a crawl whose start URL is on loopback fetches nothing."""
    from corpusmill.errors import InputError
    from crawlers.run import crawl

    site = serve(3)
    try:
        options = CrawlOptions(start_urls=[site.url], fast=True, block_private_targets=True)
        with pytest.raises(InputError):
            crawl(options, tmp_path / "out.jsonl")
    finally:
        site.shutdown()
        site.server_close()
    assert sum(site.requests.values()) == 0
    assert not (tmp_path / "out.jsonl").exists()


def test_the_request_guard_checks_redirect_targets():
    from scrapy import Request
    from scrapy.utils.test import get_crawler

    from crawlers.middlewares import PrivateTarget, PrivateTargetGuardMiddleware

    guard = PrivateTargetGuardMiddleware(get_crawler())
    redirect = Request("http://10.0.0.7/admin", meta={"redirect_urls": ["https://example.org/"]})
    with pytest.raises(PrivateTarget, match=r"10\.0\.0\.7"):
        guard.process_request(redirect)
    with pytest.raises(PrivateTarget):
        guard.process_request(Request("http://[::1]:8080/"))
    assert guard.process_request(Request("http://93.184.215.14/")) is None


# --- 3. paths that escape the workspace ---------------------------------------------------------


def _path_fields(model_cls, prefix=""):
    """Every (dotted name, annotation) of a params model whose type is a Path or marked LocalPath."""
    from pathlib import Path as P
    from typing import get_args

    def holds_path(annotation) -> bool:
        if annotation is P or any(isinstance(m, LocalPath) for m in getattr(annotation, "__metadata__", ())):
            return True
        return any(holds_path(a) for a in get_args(annotation))

    for name, field in model_cls.model_fields.items():
        if holds_path(field.annotation) or any(isinstance(m, LocalPath) for m in field.metadata):
            yield f"{prefix}{name}", field


def test_every_registered_path_parameter_is_confined(tmp_path):
    """Walk every registered step's Params model: each path-typed field set to a path outside
    the workspace is refused, naming its key; so a new step's path parameter is covered."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "link").symlink_to("/etc")
    minimal = {
        "source": {"crawl": {"start_urls": ["https://example.org/"]}},
        "split": {},
        "clean": {"regex_deny": {"patterns": ["x"]}},
        "augment": {},
    }
    checked = 0
    for kind, section in (("source", "sources"), ("clean", "clean"), ("split", "split"), ("augment", "augment")):
        for name in step_names(kind):
            params_cls = get_step(kind, name).Params
            for field_name, _field in _path_fields(params_cls):
                for escape in ("/etc/passwd", "../outside", "link/passwd"):
                    params = {**minimal[kind].get(name, {}), field_name: escape}
                    if kind == "source":
                        params.setdefault("path", "in.csv")
                    base = {"sources": [{"type": "csv", "path": "in.csv"}], "release": {"name": "r", "version": "1"}}
                    if kind == "source":
                        base["sources"] = [{"type": name, **params}]
                    elif kind == "split":
                        base["split"] = {"method": name, **params}
                    else:
                        base[section] = [{"step": name, **params}]
                    with pytest.raises(ConfigError) as caught:
                        parse_config(base, "cfg", workspace, workspace)
                    assert caught.value.path.endswith(field_name), (kind, name, field_name, caught.value)
                    assert "workspace" in caught.value.message
                    checked += 1
    # the known path parameters are among those found generically
    assert checked >= 3 * 4


def test_nested_path_parameters_and_train_models_are_confined(tmp_path):
    pivot = {"step": "backtranslate", "pivots": [{"forward": "/opt/models/x", "backward": "y"}]}
    config = {
        "sources": [{"type": "csv", "path": "in.csv"}],
        "augment": [pivot],
        "release": {"name": "r", "version": "1"},
    }
    with pytest.raises(ConfigError, match=r"augment\[0\]\.pivots\[0\]\.forward: must stay inside"):
        parse_config(config, "cfg", tmp_path, tmp_path)
    from corpusmill.service.app import TrainJob

    found = dict(path_values(TrainJob(release="a/b", model="/root/model")))
    assert found == {"model": "/root/model"}


def test_service_refuses_outside_paths_without_revealing_whether_they_exist(tmp_path):
    from fastapi.testclient import TestClient

    from corpusmill.service import create_app

    with TestClient(create_app(tmp_path, TOKEN)) as client:

        def submit(**sections):
            return client.post("/jobs", headers=AUTH, json={"kind": "build", "config": {**build_config(0), **sections}})

        answers = {
            "work_dir": submit(work_dir="/tmp/v"),
            "work_dir_up": submit(work_dir="../v"),
            "previous": submit(split={"previous": "/etc"}),
            "stopwords": submit(clean=[{"step": "strip", "stopwords": "/etc/passwd"}]),
            "missing": submit(clean=[{"step": "strip", "stopwords": "/etc/no-such-file"}]),
        }
        train = client.post(
            "/jobs", headers=AUTH, json={"kind": "train", "config": {"release": "a/b", "model": "/etc"}}
        )
    for name, response in answers.items():
        assert response.status_code == 422, name
    assert answers["stopwords"].json()["detail"][0]["msg"] == answers["missing"].json()["detail"][0]["msg"]
    assert answers["previous"].json()["detail"][0]["loc"] == ["body", "config", "split", "previous"]
    assert train.status_code == 422 and train.json()["detail"][0]["loc"][-1] == "model"
    assert not (Path("/tmp/v")).exists() or not any(Path("/tmp/v").glob("*.read"))


# --- 4. kill -9 of the service mid-build -------------------------------------------------------


def test_killed_service_never_publishes_a_half_made_release(tmp_path, shared_data):
    """SIGKILL the service (its process only, as a crash would) while two builds of one release
    run; after a restart, every published release verifies and none is empty, and no process of
    the first service's jobs is left."""
    from corpusmill.release import verify_release

    workspace = tmp_path / "ws"
    (workspace / "inputs").mkdir(parents=True)
    (workspace / "inputs" / "questions.csv").write_bytes((shared_data / "banking77" / "train.csv").read_bytes())
    config = {
        **build_config(0),
        "clean": [{"step": "normalize"}, {"step": "near_dedup", "shingle": "chars", "shingle_size": 4}],
    }
    service = Service(workspace, "--max-jobs", "2").start()
    try:
        first = service.post("/jobs", {"kind": "build", "config": config}).json()
        second = service.post("/jobs", {"kind": "build", "config": config}).json()
        work = workspace / ".corpusmill" / "work" / "svc-1"
        _wait_for(lambda: (work / "00.read.questions" / "_DONE.json").exists())
        job_pids = descendants(service.process.pid)
        assert len(job_pids) >= 2, job_pids  # both job workers (and whatever they started)
    except BaseException:
        service.stop()
        raise
    os.kill(service.process.pid, signal.SIGKILL)  # the service alone: its job workers must follow
    service.process.wait(timeout=30)
    _wait_gone(job_pids)
    service = Service(workspace, "--max-jobs", "2").start()
    try:
        states = [service.wait(job["id"])["state"] for job in (first, second)]
        resubmitted = service.wait(service.post("/jobs", {"kind": "build", "config": config}).json()["id"])
    finally:
        service.stop()
    assert states == ["succeeded", "succeeded"]
    assert resubmitted["result"]["up_to_date"] is True
    published = [m.parent for m in (workspace / "releases").glob("*/*/manifest.json")]
    assert published == [workspace / "releases" / "svc" / "1"]
    manifest = verify_release(published[0])
    assert manifest["accounting"]["released_records"] > 0 and manifest["accounting"]["balanced"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pids: set[int], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)


def test_up_to_date_is_never_answered_for_a_release_that_does_not_verify(tmp_path, shared_data, make_config):
    from corpusmill.config import load_config
    from corpusmill.errors import ReleaseError
    from corpusmill.executor import LocalExecutor

    config = make_config(
        tmp_path,
        sources=[{"type": "csv", "path": str(shared_data / "banking77" / "test.csv"), "label": "category"}],
    )
    result = LocalExecutor(load_config(config), workers=1).build()
    data = next((result.release_dir / "jsonl").glob("test.jsonl"))
    data.write_text(data.read_text().replace('"label":"card_arrival"', '"label":"refund"', 1))
    with pytest.raises(ReleaseError, match="does not verify"):
        LocalExecutor(load_config(config), workers=1).build()


# --- the service's own surface ---------------------------------------------------------------


def test_chunked_body_over_the_cap_is_refused_and_memory_stays_bounded(tmp_path):
    service = Service(tmp_path / "ws").start()
    try:
        before = _rss_kb(service.process.pid)

        def chunks():
            block = b" " * 65536
            for _ in range(80):  # 5 MB, sent without a Content-Length
                yield block

        response = httpx.post(
            f"{service.url}/jobs",
            headers={**AUTH, "Content-Type": "application/json"},
            content=chunks(),
            timeout=30,
        )
        assert response.status_code == 413
        assert "content-length" not in response.request.headers  # really chunked
        after = _rss_kb(service.process.pid)
    finally:
        service.stop()
    assert after - before < 4 * 1024, (before, after)  # well under the 5 MB sent


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_without_a_token_one_is_generated_and_hosts_are_checked(tmp_path):
    port = Service(tmp_path).port
    env = {k: v for k, v in os.environ.items() if k != "CORPUSMILL_TOKEN"}
    process = subprocess.Popen(
        [sys.executable, "-m", "corpusmill", "serve", "--port", str(port), "--workspace", str(tmp_path / "ws")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(2)]
        token = lines[0].split("token:")[1].strip()
        assert f"/?token={token}" in lines[1]
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/health")
        assert httpx.get(f"{url}/jobs").status_code == 401
        assert httpx.get(f"{url}/docs").status_code == 401
        assert httpx.get(f"{url}/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        rebinding = httpx.get(f"{url}/jobs", headers={"Authorization": f"Bearer {token}", "Host": "evil.example:80"})
        assert rebinding.status_code == 421
        browser = httpx.Client()
        assert browser.get(f"{url}/docs?token={token}").status_code == 200
        assert browser.get(f"{url}/openapi.json").status_code == 200  # the session cookie signs it in
        assert token not in browser.cookies["corpusmill_session"]
        assert httpx.get(f"{url}/openapi.json", cookies={"corpusmill_session": "x.wrong"}).status_code == 401
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_deeply_nested_and_mistyped_configs_are_one_line_errors(tmp_path):
    from fastapi.testclient import TestClient

    from corpusmill.service import create_app

    nested: list = []
    for _ in range(600):
        nested = [nested]
    with TestClient(create_app(tmp_path, TOKEN), raise_server_exceptions=False) as client:

        def submit(**sections):
            return client.post("/jobs", headers=AUTH, json={"kind": "build", "config": {**build_config(0), **sections}})

        deep = submit(clean=[{"step": "length", "min_words": nested}])
        two_paths = submit(sources=[{"type": "csv", "path": ["a", "b"]}])
    assert deep.status_code == 422 and "nested deeper" in deep.json()["detail"][0]["msg"]
    assert two_paths.status_code == 422
    assert two_paths.json()["detail"][0]["loc"] == ["body", "config", "sources", "0", "path"]

    config = tmp_path / "build.yaml"
    config.write_text("sources:\n  - type: csv\n    path: [a, b]\nrelease: {name: r, version: '1'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "corpusmill", "build", str(config)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "sources[0].path" in result.stderr
    assert "Traceback" not in result.stderr
    config.write_text("sources: " + "[" * 600 + "]" * 600 + "\nrelease: {name: r, version: '1'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "corpusmill", "build", str(config)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "nested deeper" in result.stderr and "Traceback" not in result.stderr


def _json(response: httpx.Response) -> dict:
    return json.loads(response.text)


# --- crawl ------------------------------------------------------------------------------------


def _crawl_site(routes, tmp: Path, **options) -> tuple[str | None, Site]:
    """Crawl a loopback site with these routes; the one-line error, or None when it succeeded."""
    from corpusmill.errors import CorpusmillError
    from crawlers.run import crawl

    site = Site(routes)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        crawl(CrawlOptions(start_urls=[site.url], fast=True, timeout=2, retries=0, **options), tmp / "out.jsonl")
        return None, site
    except CorpusmillError as exc:
        return str(exc), site
    finally:
        site.shutdown()
        site.server_close()


def _page(title: str, body: str, charset: str = "utf-8", declared: str | None = None):
    page = f"<html><head><title>{title}</title></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    return 200, {"Content-Type": f"text/html; charset={declared or charset}"}, page.encode(charset)


TEXT = "<p>Our kitchen prepares every dessert fresh each morning, and the menu changes with the season.</p>" * 3


@pytest.mark.parametrize("robots", ["503", "timeout", "404"])
def test_robots_txt_unavailable_means_disallow_all_but_missing_means_allow(tmp_path, robots):
    """RFC 9309 2.3.1: robots.txt that fails with 5xx or times out → complete disallow; 4xx → allow."""

    def routes(path, count, server):
        if path == "/robots.txt":
            if robots == "timeout":
                time.sleep(4)
                return 200, {"Content-Type": "text/plain"}, b""
            return int(robots), {"Content-Type": "text/plain"}, b"unavailable"
        return _page("Home", TEXT)

    error, site = _crawl_site(routes, tmp_path)
    if robots == "404":
        assert error is None
        assert site.requests["/"] == 1
    else:
        assert error is not None and "robots_disallowed" in error, error
        assert site.requests["/"] == 0


def test_a_cp1252_page_labelled_utf8_is_decoded_as_windows_1252(tmp_path):
    def routes(path, count, server):
        if path == "/robots.txt":
            return 404, {}, b""
        body = "<p>Crème brûlée, crêpes, café.</p><p>Déjà vu à la carte.</p>"
        return _page("Crème brûlée", body, charset="cp1252", declared="utf-8")

    error, _ = _crawl_site(routes, tmp_path)
    assert error is None, error
    texts = [json.loads(line)["text"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert any("Crème brûlée, crêpes, café." in text for text in texts), texts


def test_a_gzip_bomb_page_is_rejected_as_too_large(tmp_path):
    import gzip

    bomb = gzip.compress(b"<html><body>" + b"A" * (30 * 1024 * 1024) + b"</body></html>")

    def routes(path, count, server):
        if path == "/robots.txt":
            return 404, {}, b""
        if path == "/bomb":
            return 200, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, bomb
        return _page("Home", '<a href="/bomb">more</a>' + TEXT)

    error, _ = _crawl_site(routes, tmp_path, max_bytes=5 * 1024 * 1024)
    assert error is None, error
    rejects = [json.loads(line) for line in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejects if r["url"].endswith("/bomb")] == ["too_large"]


# --- orphans --------------------------------------------------------------------------------------


def _wait_for(condition, process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, "the process ended before the condition held"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_kill_9_of_a_build_leaves_no_process_behind(tmp_path, shared_data, make_config):
    config = make_config(
        tmp_path,
        sources=[{"type": "csv", "path": str(shared_data / "banking77" / "train.csv"), "label": "category"}],
        clean=[{"step": "normalize"}, {"step": "pii"}, {"step": "gopher"}],
    )
    build = subprocess.Popen(
        [sys.executable, "-m", "corpusmill", "build", str(config), "--workers", "2"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: len(descendants(build.pid)) >= 3, build)  # the forkserver and its two workers
    children = descendants(build.pid)
    os.kill(build.pid, signal.SIGKILL)  # the parent alone, as a crash or the OOM killer would
    build.wait(timeout=30)
    _wait_gone(children)


def test_kill_9_of_a_crawl_then_an_immediate_resume_writes_each_page_and_link_once(tmp_path):
    site = Site(linear_routes(pages=120, delay=0.02))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    out, job = tmp_path / "out.jsonl", tmp_path / "job"
    command = crawl_command(site.url, str(out), "--job-dir", str(job), "--max-pages", "100")
    try:
        crawl = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(lambda: (job / "records.jsonl").exists() and (job / "records.jsonl").stat().st_size > 20_000, crawl)
        children = descendants(crawl.pid)
        assert children
        os.kill(crawl.pid, signal.SIGKILL)  # only the CLI: its Scrapy child must not crawl on
        crawl.wait(timeout=30)
        resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
        _wait_gone(children, timeout=5)
    finally:
        site.shutdown()
        site.server_close()
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    pages = [json.loads(line)["source"]["uri"] for line in out.read_text().splitlines()]
    assert len(pages) == len(set(pages)) == 100
    skipped = [
        (r["url"], r["reason"])
        for r in map(json.loads, out.with_name("out.rejects.jsonl").read_text().splitlines())
        if not r.get("requested")
    ]
    assert skipped and len(skipped) == len(set(skipped))  # each link not followed listed once
    stats = json.loads(out.with_name("out.stats.json").read_text())
    # the summary keeps rejected pages and links not followed apart, with stats.json's numbers
    assert f"Links not followed ({sum(stats['not_followed'].values())}):" in resumed.stdout
    for reason, count in stats["not_followed"].items():
        assert f"  {reason}: {count}" in resumed.stdout


def test_the_crawl_summary_says_how_many_links_max_depth_cut_and_how_to_follow_them(tmp_path):
    site = Site(linear_routes(pages=40, delay=0))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    out = tmp_path / "out.jsonl"
    try:
        done = subprocess.run(
            crawl_command(site.url, str(out), "--max-depth", "2"), capture_output=True, text=True, timeout=300
        )
    finally:
        site.shutdown()
        site.server_close()
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads(out.with_name("out.stats.json").read_text())
    assert stats["pages_written"] == 6  # depth 0: /, depth 1: 1 and 2, depth 2: 3, 5 and 8
    cut = stats["not_followed"]["max_depth"]
    assert cut > 0
    assert f"  max_depth: {cut} (deeper than --max-depth 2: raise it to follow them)" in done.stdout


def test_a_second_crawl_on_a_busy_job_dir_is_refused(tmp_path):
    from corpusmill.errors import CorpusmillError
    from corpusmill.processes import FileLock
    from crawlers.run import crawl

    job = tmp_path / "job"
    with FileLock(job / "crawl.lock"), pytest.raises(CorpusmillError, match="another crawl is running"):
        crawl(CrawlOptions(start_urls=["http://127.0.0.1:9/"]), tmp_path / "out.jsonl", job)


def test_cancelling_a_running_build_kills_its_whole_process_group(tmp_path, shared_data):
    workspace = tmp_path / "ws"
    (workspace / "inputs").mkdir(parents=True)
    (workspace / "inputs" / "questions.csv").write_bytes((shared_data / "banking77" / "train.csv").read_bytes())
    config = {**build_config(0), "clean": [{"step": "normalize"}, {"step": "near_dedup", "workers": 2}]}
    service = Service(workspace).start()
    try:
        job = service.post("/jobs", {"kind": "build", "config": config}).json()
        own_group = os.getpgid(service.process.pid)

        def job_processes() -> set[int]:
            found = set()
            for pid in descendants(service.process.pid):
                try:
                    if os.getpgid(pid) != own_group:
                        found.add(pid)
                except ProcessLookupError:
                    continue
            return found

        _wait_for(lambda: len(job_processes()) >= 3)  # the job worker, a forkserver, signature workers
        running = job_processes()
        cancelled = httpx.delete(f"{service.url}/jobs/{job['id']}", headers=AUTH, timeout=30)
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        _wait_gone(running)
        assert service.get("/health").status_code == 200
    finally:
        service.stop()
    assert not (workspace / "releases" / "svc" / "1").exists()


# --- regex, imports, verify -------------------------------------------------------------------


def test_a_catastrophic_regex_is_bounded_and_rejects_the_record():
    from corpusmill.schema import Record, Source

    deny = get_step("clean", "regex_deny")(patterns=["^(a+)+$", "^(a|aa)+$"], timeout=0.2)
    records = [
        Record(id="evil", text="a" * 60 + "!", source=Source(kind="import", uri="x", dataset="d")),
        Record(id="fine", text="a normal sentence", source=Source(kind="import", uri="x", dataset="d")),
    ]
    started = time.monotonic()
    kept = list(deny.run(iter(records)))
    assert time.monotonic() - started < 5
    assert [r.id for r in kept] == ["fine"]
    assert deny.stats.dropped == {"regex_timeout": 1}


def _import(source: Path, *options: str) -> subprocess.CompletedProcess:
    out = source.with_name(source.name + ".out.jsonl")
    command = [sys.executable, "-m", "corpusmill", "import", str(source), "--out", str(out), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _warc(path: Path, pages: int) -> bytes:
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    for n in range(pages):
        html = f"<html><head><title>Page {n}</title></head><body><main><h1>Page {n}</h1>{TEXT}</main></body></html>"
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
        record = writer.create_warc_record(
            f"http://example.org/{n}", "response", payload=io.BytesIO(html.encode()), http_headers=headers
        )
        writer.write_record(record)
    return buffer.getvalue()


def test_a_truncated_warc_is_an_error_or_a_reject(tmp_path):
    data = _warc(tmp_path, 40)
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: int(len(data) * 0.67)])
    _one_line_error(_import(cut), "cut.warc.gz: truncated after record")
    assert not cut.with_name("cut.warc.gz.out.jsonl").exists()
    skipped = _import(cut, "--on-error", "skip")
    assert skipped.returncode == 0 and "truncated: 1" in skipped.stdout
    whole = tmp_path / "whole.warc.gz"
    whole.write_bytes(data)
    assert "40 records out" in _import(whole).stdout


def test_import_edge_cases_are_one_line_errors_or_work(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"text": [f"row number {n} with some text" for n in range(2000)]})
    pq.write_table(table, tmp_path / "good.parquet", compression="none")
    corrupt = bytearray((tmp_path / "good.parquet").read_bytes())
    corrupt[200:2200] = b"\xff" * 2000
    (tmp_path / "corrupt.parquet").write_bytes(bytes(corrupt))
    _one_line_error(_import(tmp_path / "corrupt.parquet"), "corrupt.parquet:row 1: corrupt parquet data")

    (tmp_path / "empty.json").write_text("")
    _one_line_error(_import(tmp_path / "empty.json"), "empty.json: empty input")

    rows = "text,label\nhéllo wörld,a\nzweite Zeile,b\n"
    (tmp_path / "bom.csv").write_bytes(rows.encode("utf-16"))
    (tmp_path / "plain16.csv").write_bytes(rows.encode("utf-16-le"))
    for result in (_import(tmp_path / "bom.csv"), _import(tmp_path / "plain16.csv", "--encoding", "utf-16")):
        assert result.returncode == 0, result.stderr
    texts = [json.loads(line)["text"] for line in (tmp_path / "plain16.csv.out.jsonl").read_text().splitlines()]
    assert texts == ["héllo wörld", "zweite Zeile"]

    (tmp_path / "big.csv").write_text("text,label\n" + "word " * 60_000 + ",a\n")
    big = _import(tmp_path / "big.csv")
    assert big.returncode == 0, big.stderr

    (tmp_path / "allbad.jsonl").write_text('{"other": 1}\n{"other": 2}\n')
    nothing = _import(tmp_path / "allbad.jsonl", "--on-error", "skip")
    _one_line_error(nothing, "nothing imported: all 2 rows were rejected (missing_field: 2)")
    assert not (tmp_path / "allbad.jsonl.out.jsonl").exists()


@pytest.fixture
def release(tmp_path, shared_data, make_config) -> Path:
    from corpusmill.config import load_config
    from corpusmill.executor import LocalExecutor

    config = make_config(
        tmp_path,
        sources=[{"type": "csv", "path": str(shared_data / "banking77" / "test.csv"), "label": "category"}],
    )
    return LocalExecutor(load_config(config), workers=1).build().release_dir


def _verify(directory: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "corpusmill", "release", "verify", str(directory)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _rehash(directory: Path, name: str) -> None:
    import hashlib

    manifest = json.loads((directory / "manifest.json").read_text())
    data = (directory / name).read_bytes()
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_verify_rereads_records_and_refuses_paths_outside_the_release(release):
    import pyarrow.parquet as pq

    assert _verify(release).returncode == 0
    manifest_text = (release / "manifest.json").read_text()

    # an edited label in the JSONL mirror, its sha256 updated in the manifest
    mirror = release / "jsonl" / "test.jsonl"
    original = mirror.read_text()
    first = json.loads(original.splitlines()[0])
    names = json.loads(manifest_text)["label_names"]
    for label, error in (
        (next(n for n in names if n != first["label"]), "differs from parquet row"),
        ("no_such_intent", ":1: label 'no_such_intent' is not in label_names"),
    ):
        first["label"] = label
        mirror.write_text(json.dumps(first, separators=(",", ":"), sort_keys=True) + "\n" + original.split("\n", 1)[1])
        _rehash(release, "jsonl/test.jsonl")
        _one_line_error(_verify(release), error, *(("field 'label'",) if error.startswith("differs") else ()))
    mirror.write_text(original)
    (release / "manifest.json").write_text(manifest_text)

    # a parquet shard that lost rows, rehashed
    shard = next((release / "data").glob("train-*.parquet"))
    table = pq.read_table(shard)
    pq.write_table(table.slice(0, table.num_rows - 1), shard)
    (release / "manifest.json").write_text(manifest_text)
    _rehash(release, shard.relative_to(release).as_posix())
    _one_line_error(_verify(release), "more lines than the")

    # the manifest itself hostile
    for hostile in ("[]", json.dumps({"name": "test"})):
        (release / "manifest.json").write_text(hostile)
        _one_line_error(_verify(release), "not a corpusmill manifest")
    escaping = json.loads(manifest_text)
    escaping["files"]["../../etc/hostname"] = {"sha256": "0" * 64, "bytes": 1}
    (release / "manifest.json").write_text(json.dumps(escaping))
    _one_line_error(_verify(release), "lies outside the release")


def test_two_builds_of_one_release_at_once_are_serialised(tmp_path, shared_data, make_config):
    config = make_config(
        tmp_path,
        sources=[{"type": "csv", "path": str(shared_data / "banking77" / "test.csv"), "label": "category"}],
        clean=[{"step": "normalize"}, {"step": "exact_dedup"}],
    )
    command = [sys.executable, "-m", "corpusmill", "build", str(config), "--workers", "1"]
    builds = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [build.communicate(timeout=300) for build in builds]
    assert [build.returncode for build in builds] == [0, 0], results
    assert any("up to date" in out.lower() + err.lower() for out, err in results), results
