"""Shared crawling: one site crawled by one worker, and by two workers sharing a Redis, in one run.

    .venv/bin/python bench/crawl_shared.py [--pages 800] [--latency 0.1] [--concurrency 8]

The generated site of ``bench/crawl.py`` answers each page after ``--latency`` seconds, as a remote
site does; each worker keeps ``--concurrency`` requests in flight. Runs ``corpusmill crawl`` alone
(the local scheduler: the peer), then one and two ``--redis`` workers on a fresh redis-server, and
prints pages/s for each and the two-worker / one-worker ratio. Not a test; not run in CI.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "helpers"))
sys.path.insert(0, str(REPO / "bench"))

from crawl import serve  # noqa: E402
from redis_server import redis_server  # noqa: E402


def run_workers(base: str, out_dir: Path, count: int, options: list[str]) -> float:
    """Seconds until every one of ``count`` workers has exited."""
    command = [sys.executable, "-m", "corpusmill", "crawl", base, "--fast", "--max-depth", "1000", *options]
    started = time.perf_counter()
    workers = [
        subprocess.Popen([*command, "--out", str(out_dir / f"worker-{n}.jsonl")], stdout=subprocess.DEVNULL)
        for n in range(count)
    ]
    for worker in workers:
        if worker.wait() != 0:
            raise SystemExit(f"a crawl worker failed (exit {worker.returncode})")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=800)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue, args.pages, args.latency), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{queue.get()}/"
    concurrency = ["--concurrency", str(args.concurrency)]
    results: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results["local scheduler, 1 worker"] = run_workers(base, Path(tmp), 1, concurrency)
            for count in (1, 2):
                with redis_server(Path(tmp)) as url:
                    seconds = run_workers(base, Path(tmp), count, [*concurrency, "--redis", url])
                results[f"--redis, {count} worker{'s' * (count > 1)}"] = seconds
    finally:
        server.terminate()
    print(f"{args.pages} pages, {args.latency * 1000:.0f} ms each, {args.concurrency} requests in flight per worker")
    for name, seconds in results.items():
        print(f"{name:26s} {args.pages / seconds:7.1f} pages/s ({seconds:.1f}s, process start included)")
    one, two = results["--redis, 1 worker"], results["--redis, 2 workers"]
    print(f"--redis 2 workers / 1 worker: {one / two:.2f}x")
    print(f"--redis 1 worker / local scheduler: {results['local scheduler, 1 worker'] / one:.2f}x")


if __name__ == "__main__":
    main()
