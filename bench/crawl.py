"""Crawl throughput against the ceiling: what the same loopback server serves to a plain client.

    .venv/bin/python bench/crawl.py [--pages 2000]

Starts a generated N-page site in its own process (ThreadingHTTPServer, backlog 1024), fetches
every URL with a plain concurrent HTTP client (the ceiling), then crawls it with
``corpusmill crawl --fast`` (link discovery, extraction, records written), and prints pages/s for
both and the ratio. Not a test; not run in CI.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crawlers.options import CrawlOptions
from crawlers.run import crawl

WORDS = ["parcel", "delivery", "locker", "refund", "tracking", "address", "driver", "depot", "label", "return"]


def page(number: int, pages: int) -> bytes:
    links = "".join(
        f'<a href="/p/{n}">page {n}</a> ' for n in (number + 1, 2 * number + 1, 3 * number + 2) if n < pages
    )
    text = " ".join(WORDS[(number * 7 + i) % len(WORDS)] for i in range(120))
    return (
        f"<html><head><title>Page {number}</title></head><body><main><h1>Page {number}</h1>"
        f"<p>{text}.</p><p>{text}.</p>{links}</main></body></html>"
    ).encode()


def serve(port_queue: multiprocessing.Queue, pages: int, latency: float = 0.0) -> None:
    """The generated site; every page answers after ``latency`` seconds (a remote server's delay)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:
            if self.path == "/robots.txt":
                body, status = b"", 404
            else:
                number = 0 if self.path == "/" else int(self.path.rsplit("/", 1)[1])
                body, status = page(number, pages), 200
                time.sleep(latency)
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def ceiling(base: str, pages: int, threads: int = 32) -> float:
    urls = [base] + [f"{base}p/{n}" for n in range(1, pages)]

    def fetch(url: str) -> int:
        with urllib.request.urlopen(url, timeout=30) as response:
            return len(response.read())

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fetch, urls))
    return pages / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=2000)
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue, args.pages), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{queue.get()}/"
    try:
        plain = ceiling(base, args.pages)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = crawl(CrawlOptions(start_urls=[base], fast=True, max_depth=100), Path(tmp) / "out.jsonl")
            elapsed = time.perf_counter() - started
        ours = result.stats["pages_written"] / elapsed
    finally:
        server.terminate()
    written, records = result.stats["pages_written"], result.stats["records"]
    print(f"pages: {args.pages}; corpusmill wrote {written} pages, {records} records")
    print(f"ceiling (plain concurrent client): {plain:8.1f} pages/s")
    print(f"corpusmill crawl --fast:           {ours:8.1f} pages/s (incl. process start, extraction, output)")
    print(f"ratio: {ours / plain:.2f}")


if __name__ == "__main__":
    main()
