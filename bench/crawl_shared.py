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
from quiet import NoiseMonitor, spread  # noqa: E402
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
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue, args.pages, args.latency), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{queue.get()}/"
    concurrency = ["--concurrency", str(args.concurrency)]
    seconds: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            noise = NoiseMonitor()
            for _ in range(args.runs):  # alternating, so a slow minute hurts every side alike
                seconds.setdefault("local scheduler, 1 worker", []).append(run_workers(base, Path(tmp), 1, concurrency))
                for count in (1, 2):
                    with redis_server(Path(tmp)) as url:
                        taken = run_workers(base, Path(tmp), count, [*concurrency, "--redis", url])
                    seconds.setdefault(f"--redis, {count} worker{'s' * (count > 1)}", []).append(taken)
            verdict = noise.verdict()
    finally:
        server.terminate()
    print(f"{args.pages} pages, {args.latency * 1000:.0f} ms each, {args.concurrency} requests in flight per worker")
    for name, values in seconds.items():
        print(f"{name:26s} {spread([args.pages / v for v in values], ' pages/s')} (process start included)")
    one, two = seconds["--redis, 1 worker"], seconds["--redis, 2 workers"]
    local = seconds["local scheduler, 1 worker"]
    print(f"--redis 2 workers / 1 worker: {spread([a / b for a, b in zip(one, two, strict=True)], 'x')}")
    print(f"--redis 1 worker / local scheduler: {spread([a / b for a, b in zip(local, one, strict=True)], 'x')}")
    print(verdict)


if __name__ == "__main__":
    main()
