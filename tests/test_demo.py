"""`corpusmill demo` end to end, as a user runs it."""

import json
import os
import re
import signal
import subprocess
import sys

import httpx
from served import free_port, wait_until_up


def test_demo_builds_a_verified_release_and_reruns_as_up_to_date(tmp_path):
    command = [sys.executable, "-m", "corpusmill", "demo", "--out", str(tmp_path / "demo")]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    classifier = re.search(r"Intent classifier on test: accuracy ([0-9.]+)", first.stdout)
    assert classifier and float(classifier.group(1)) > 0.5, first.stdout  # 10 intents: chance is 0.1
    chat = re.search(r"Chat model on test: perplexity ([0-9.]+) \(base\) → ([0-9.]+) \(tuned\)", first.stdout)
    assert chat and float(chat.group(2)) < float(chat.group(1)), first.stdout
    assert "  tuned: " in first.stdout and (tmp_path / "demo" / "chat-model" / "model" / "adapter_config.json").exists()
    release = tmp_path / "demo" / "releases" / "parcelly-helpdesk" / "1.0.0"
    assert f"Card:   {release / 'README.md'}" in first.stdout
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["accounting"]["balanced"]
    assert sum(info["records"] for info in manifest["splits"].values()) > 200
    labels = {json.loads(line)["label"] for line in (release / "jsonl" / "train.jsonl").read_text().splitlines()}
    assert len(labels - {None}) >= 8
    records = [
        json.loads(line)
        for split in manifest["splits"]
        for line in (release / "jsonl" / f"{split}.jsonl").read_text().splitlines()
    ]
    crawled = [r for r in records if r["source"]["kind"] == "crawl"]
    assert len([r for r in crawled if r["text"]]) >= 14  # help-centre pages
    questions = {r["messages"][0]["content"] for r in crawled if r["messages"]}
    assert {"Do you deliver on Sundays?", "Is my parcel insured?", "Can I visit a depot?"} <= questions
    crawl_rejects = (tmp_path / "demo" / "inputs" / "helpcentre.rejects.jsonl").read_text()
    assert '"reason": "robots_disallowed"' in crawl_rejects
    rejected = manifest["accounting"]["rejected"]
    assert rejected["clean.length"]["too_few_chars"] >= 3
    assert rejected["clean.exact_dedup"]["exact_duplicate"] >= 4

    verify = subprocess.run(
        [sys.executable, "-m", "corpusmill", "release", "verify", str(release)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0 and verify.stdout.startswith("OK ")

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "is up to date" in again.stdout


def test_two_demo_runs_write_the_same_data_files_whatever_port_the_site_had(tmp_path):
    """The help centre is served on a random loopback port each run; its records name the
    published origin instead, so ids, groups and splits do not depend on the port. The second
    run ends with ``--serve``: the printed link opens its release in the web page."""
    command = [sys.executable, "-m", "corpusmill", "demo", "--no-train", "--out", str(tmp_path / "first")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    port = free_port()
    serving = subprocess.Popen(
        [*command[:-1], str(tmp_path / "second"), "--serve", "--port", str(port)],
        env={k: v for k, v in os.environ.items() if k != "CORPUSMILL_TOKEN"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        link = next(line.split()[1] for line in serving.stdout if line.startswith("open http://"))
        assert link.startswith(f"http://127.0.0.1:{port}/ui/releases/parcelly-helpdesk/1.0.0?token=")
        wait_until_up(link)
        page = httpx.get(link, headers={"Accept": "text/html"}, follow_redirects=True, timeout=30)
        assert (
            page.status_code == 200
            and "parcelly-helpdesk <small>1.0.0</small>" in page.text
            and "Balanced" in page.text
        )
    finally:
        os.killpg(serving.pid, signal.SIGTERM)
        serving.wait(timeout=30)
    releases = [tmp_path / run / "releases" / "parcelly-helpdesk" / "1.0.0" for run in ("first", "second")]
    first, second = releases
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.parent.name in ("data", "jsonl"))
    assert len(files) == 6
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    records = [json.loads(line) for line in (first / "jsonl" / "train.jsonl").read_text().splitlines()]
    crawled = [r for r in records if r["source"]["kind"] == "crawl"]
    assert crawled and all(r["source"]["uri"].startswith("https://help.parcelly.example/") for r in crawled)
    assert all(r["source"]["fetched_at"] is None and "127.0.0.1" not in json.dumps(r) for r in crawled)
