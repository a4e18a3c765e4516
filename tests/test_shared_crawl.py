"""Several crawl processes sharing one crawl through a real redis-server (scrapy-redis)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from edge_site import Site, crawl_command, linear_routes
from jsonl import read_jsonl

from crawlers.options import CrawlOptions
from crawlers.run import progress_line

PAGES = 200
PAGE_PATHS = {"/"} | {f"/p/{n}" for n in range(1, PAGES)}


@contextmanager
def slow_site(pages: int, delay: float) -> Iterator[Site]:
    site = Site(linear_routes(pages=pages, delay=delay))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield site
    finally:
        site.shutdown()
        site.server_close()


def worker_command(url: str, redis_url: str, out: Path, *extra: str) -> list[str]:
    shared = ["--concurrency", "4", "--redis", redis_url, "--worker-timeout", "3"]
    return crawl_command(url, str(out), *shared, *extra)


def start_worker(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(condition, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def finish(process: subprocess.Popen) -> str:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


def page_fetches(site: Site) -> dict[str, int]:
    return {path: n for path, n in site.requests.items() if path in PAGE_PATHS}


def shared_stats(out: Path) -> dict:
    return json.loads(out.with_name(out.stem + ".stats.json").read_text())["shared"]


def test_two_workers_split_a_site_and_fetch_every_page_exactly_once(tmp_path, redis_url):
    with slow_site(PAGES, delay=0.15) as site:
        key = CrawlOptions(start_urls=[site.url], max_depth=200).shared_key()
        client = redis.Redis.from_url(redis_url)
        first = start_worker(
            worker_command(site.url, redis_url, tmp_path / "a.jsonl", "--job-dir", str(tmp_path / "job"))
        )
        wait_until(lambda: client.hlen(f"{key}:done") >= 5, first)
        second = start_worker(worker_command(site.url, redis_url, tmp_path / "b.jsonl"))
        finish(first), finish(second)
        fetches = page_fetches(site)
        robots = site.requests["/robots.txt"]
    assert set(fetches) == PAGE_PATHS
    assert set(fetches.values()) == {1}  # no page fetched twice across the two workers
    assert robots <= 3  # once per worker for its rules, once for sitemaps (shared fingerprint set)
    split = shared_stats(tmp_path / "a.jsonl")["pages_by_worker"]
    assert len(split) == 2 and min(split.values()) >= 10 and sum(split.values()) == PAGES
    progress = json.loads((tmp_path / "job" / "progress.json").read_text())
    assert 0 < progress["crawl_done"] <= progress["crawl_claimed"] <= PAGES  # the whole crawl, not one worker
    assert "shared crawl:" in progress_line(tmp_path / "job" / "progress.json", 1.0).plain
    # Each worker writes the whole crawl: the same records, every page once.
    records = read_jsonl(tmp_path / "a.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    uris = [r["source"]["uri"] for r in records]
    assert len(uris) == len(set(uris)) == PAGES
    assert set(uris) == {site.url.rstrip("/") + path for path in PAGE_PATHS}


def test_killing_one_worker_mid_crawl_the_other_finishes_the_site(tmp_path, redis_url):
    with slow_site(PAGES, delay=0.15) as site:
        key = CrawlOptions(start_urls=[site.url], max_depth=200).shared_key()
        client = redis.Redis.from_url(redis_url)
        doomed = start_worker(worker_command(site.url, redis_url, tmp_path / "doomed.jsonl"))
        wait_until(lambda: client.scard(f"{key}:workers") == 1, doomed)
        doomed_id = client.smembers(f"{key}:workers").pop().decode()
        survivor = start_worker(worker_command(site.url, redis_url, tmp_path / "survivor.jsonl"))
        wait_until(lambda: client.hlen(f"{key}:done") >= 60 and client.scard(f"{key}:workers") == 2, survivor)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
        held = client.hlen(f"{key}:inflight:{doomed_id}")  # leased to the dead worker, never recorded
        done_at_kill = client.hlen(f"{key}:done")
        finish(survivor)
        fetches = page_fetches(site)
    assert done_at_kill < PAGES
    assert not (tmp_path / "doomed.jsonl").exists()
    assert set(fetches) == PAGE_PATHS
    assert sum(fetches.values()) - PAGES <= held  # only pages the dead worker held are fetched again
    split = shared_stats(tmp_path / "survivor.jsonl")["pages_by_worker"]
    assert split[doomed_id] > 0 and sum(split.values()) == PAGES
    uris = [r["source"]["uri"] for r in read_jsonl(tmp_path / "survivor.jsonl")]
    assert len(uris) == len(set(uris)) == PAGES  # every page recorded exactly once
    assert not client.exists(f"{key}:inflight:{doomed_id}")


def test_page_limit_holds_across_workers_and_a_late_worker_only_writes_the_output(tmp_path, redis_url):
    with slow_site(120, delay=0.02) as site:
        commands = [
            worker_command(site.url, redis_url, tmp_path / f"{name}.jsonl", "--max-pages", "30") for name in "abc"
        ]
        workers = [start_worker(command) for command in commands[:2]]
        for worker in workers:
            finish(worker)
        fetches = {path: n for path, n in site.requests.items() if path != "/robots.txt"}
        finish(start_worker(commands[2]))  # joins a finished crawl
        fetches_after = {path: n for path, n in site.requests.items() if path != "/robots.txt"}
    assert len(fetches) == 30 and set(fetches.values()) == {1}
    assert len(read_jsonl(tmp_path / "a.jsonl")) == 30
    skipped = [r for r in read_jsonl(tmp_path / "a.rejects.jsonl") if r["reason"] == "max_pages"]
    assert skipped and len({r["url"] for r in skipped}) == len(skipped)  # reported once, not per worker
    assert fetches_after == fetches
    assert (tmp_path / "c.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


def test_unreachable_redis_fails_in_one_line(tmp_path):
    from served import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        worker_command("http://127.0.0.1:9/", url, tmp_path / "out.jsonl"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"{url}: Redis unreachable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.jsonl").exists()
