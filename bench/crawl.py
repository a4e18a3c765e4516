"""Crawl throughput and CPU per page: corpusmill against the Scrapy spider a user would write,
with the fetch ceiling beside them.

    .venv/bin/python bench/crawl.py [--pages 2000] [--concurrency 16] [--runs 3]

Starts a generated N-page site in its own process (ThreadingHTTPServer, backlog 1024, TCP_NODELAY
and headers and body in one write, so a kept-alive connection never waits ~40 ms on Nagle and
delayed ACKs). Measured on it, alternating, ``--runs`` times each:
- the ceiling: every URL fetched by a plain concurrent client (``--concurrency`` threads);
- the peer: a plain Scrapy spider that follows links and runs trafilatura in an item pipeline,
  writing JSON lines (what a user writes without corpusmill), same concurrency, no throttling;
- ``corpusmill crawl --fast --concurrency N`` (link discovery, extraction, records written).
Each crawl runs as a child process: pages/s include its start; CPU seconds per page are the whole
machine's busy time during the crawl less the site server's (so every process the crawl starts
counts). Each side also crawls a one-page site: its start-up CPU (imports, processes, models),
and the CPU per page beyond it, which is what a long crawl pays. Medians with spread and a noise
verdict.
Not a test; not run in CI.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quiet import NoiseMonitor, machine_busy_seconds, process_cpu_seconds, spread

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

        disable_nagle_algorithm = True  # TCP_NODELAY

        def do_GET(self) -> None:
            if self.path == "/robots.txt":
                body, status = b"", 404
            else:
                number = 0 if self.path == "/" else int(self.path.rsplit("/", 1)[1])
                body, status = page(number, pages), 200
                time.sleep(latency)
            head = (
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
                f"Content-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            self.wfile.write(head.encode() + body)  # one write: headers and body in one segment

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


PLAIN_SPIDER = r"""
import json, sys
import scrapy, trafilatura
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor

start, out, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])

class Extract:
    def open_spider(self, spider=None):
        self.handle = open(out, "w", encoding="utf-8")
    def close_spider(self, spider=None):
        self.handle.close()
    def process_item(self, item, spider=None):
        text = trafilatura.extract(item.pop("html"), url=item["url"])
        if text:
            self.handle.write(json.dumps({**item, "text": text}) + "\n")
        return item

class Site(scrapy.Spider):
    name = "site"
    start_urls = [start]
    links = LinkExtractor()  # the generated site links only to itself
    def parse(self, response):
        yield {"url": response.url, "title": response.css("title::text").get(), "html": response.text}
        for link in self.links.extract_links(response):
            yield response.follow(link.url, self.parse)

process = CrawlerProcess({
    "CONCURRENT_REQUESTS": concurrency, "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
    "ROBOTSTXT_OBEY": True, "AUTOTHROTTLE_ENABLED": False, "DOWNLOAD_DELAY": 0, "DEPTH_LIMIT": 100,
    "COOKIES_ENABLED": False, "TELNETCONSOLE_ENABLED": False, "LOG_LEVEL": "ERROR",
    "ITEM_PIPELINES": {"__main__.Extract": 100},
})
process.crawl(Site)
process.start()
"""


def timed_child(command: list[str], server_pid: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one crawl: the machine's busy time less the site server's.

    Counting the crawl's own process tree is not enough: a forkserver and the pool workers it
    forks are not reaped by the crawl, so ``RUSAGE_CHILDREN`` misses them.
    """
    busy, served = machine_busy_seconds(), process_cpu_seconds(server_pid)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    return elapsed, (machine_busy_seconds() - busy) - (process_cpu_seconds(server_pid) - served)


def lines(path: Path) -> int:
    return sum(1 for _ in path.open(encoding="utf-8")) if path.exists() else 0


def commands(spider: Path, base: str, tmp: str, tag: str, concurrency: int) -> dict[str, list[str]]:
    """The two crawls' command lines, writing under ``tmp``."""
    return {
        "plain Scrapy + trafilatura": [sys.executable, str(spider), base, f"{tmp}/plain-{tag}.jsonl", str(concurrency)],
        "corpusmill crawl --fast": [
            sys.executable,
            "-m",
            "corpusmill",
            "crawl",
            base,
            "--out",
            f"{tmp}/ours-{tag}.jsonl",
            "--fast",
            "--max-depth",
            "100",
            "--concurrency",
            str(concurrency),
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue, args.pages), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{queue.get()}/"
    one_page = multiprocessing.Process(target=serve, args=(queue, 1), daemon=True)
    one_page.start()
    one_page_base = f"http://127.0.0.1:{queue.get()}/"
    startup: dict[str, list[float]] = {"plain Scrapy + trafilatura": [], "corpusmill crawl --fast": []}
    rates: dict[str, list[float]] = {"ceiling": [], "plain Scrapy + trafilatura": [], "corpusmill crawl --fast": []}
    cpu: dict[str, list[float]] = {"plain Scrapy + trafilatura": [], "corpusmill crawl --fast": []}
    written: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spider = Path(tmp) / "plain_spider.py"  # a file: Scrapy reads its callbacks' source
            spider.write_text(PLAIN_SPIDER, encoding="utf-8")
            noise = NoiseMonitor()
            for run in range(args.runs):  # alternating, so a slow minute hurts every side alike
                rates["ceiling"].append(ceiling(base, args.pages, args.concurrency))
                for name, command in commands(spider, one_page_base, tmp, f"one-{run}", args.concurrency).items():
                    startup[name].append(timed_child(command, one_page.pid)[1])
                sides = commands(spider, base, tmp, str(run), args.concurrency)
                for name, command in sides.items():
                    out = Path(command[command.index("--out") + 1] if "--out" in command else command[3])
                    seconds, cpu_seconds = timed_child(command, server.pid)
                    pages = (
                        lines(out)
                        if name.startswith("plain")
                        else json.loads(out.with_name(out.stem + ".stats.json").read_text())["pages_written"]
                    )
                    written[name] = pages
                    rates[name].append(pages / seconds)
                    cpu[name].append(cpu_seconds / max(pages, 1) * 1000)
            verdict = noise.verdict()
    finally:
        server.terminate()
        one_page.terminate()
    print(f"{args.pages}-page site, {args.concurrency} requests in flight, {os.cpu_count()} CPU cores")
    for name, values in rates.items():
        extra = f", {spread(cpu[name], ' CPU-ms/page')}, {written[name]} pages written" if name in cpu else ""
        print(f"{name:28s} {spread(values, ' pages/s')}{extra}")
    ours, plain = rates["corpusmill crawl --fast"], rates["plain Scrapy + trafilatura"]
    print(f"corpusmill / plain Scrapy, pages/s: {spread([a / b for a, b in zip(ours, plain, strict=True)], 'x')}")
    ratio = [a / b for a, b in zip(cpu["corpusmill crawl --fast"], cpu["plain Scrapy + trafilatura"], strict=True)]
    print(f"corpusmill / plain Scrapy, CPU per page: {spread(ratio, 'x')}")
    beyond: dict[str, list[float]] = {
        name: [
            (c * written[name] / 1000 - start) / (written[name] - 1) * 1000
            for c, start in zip(cpu[name], startup[name], strict=True)
        ]
        for name in cpu
    }
    for name in cpu:
        print(
            f"{name:28s} start-up {spread(startup[name], ' CPU-s')}, beyond it {spread(beyond[name], ' CPU-ms/page')}"
        )
    ratio = [
        a / b for a, b in zip(beyond["corpusmill crawl --fast"], beyond["plain Scrapy + trafilatura"], strict=True)
    ]
    print(f"corpusmill / plain Scrapy, CPU per page beyond start-up: {spread(ratio, 'x')}")
    print(f"corpusmill / ceiling, pages/s: {spread([a / b for a, b in zip(ours, rates['ceiling'], strict=True)], 'x')}")
    print(verdict)


if __name__ == "__main__":
    main()
