"""A generated loopback site with every crawl hazard, recording each request it receives."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Site(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True

    def __init__(self, routes, other_origin: str = "") -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes = routes
        self.other_origin = other_origin
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        return

    def do_GET(self) -> None:
        server: Site = self.server  # type: ignore[assignment]
        path = urlsplit(self.path).path
        with server.lock:
            server.requests[path] += 1
            count = server.requests[path]
        status, headers, body = server.routes(path, count, server)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a crawler may hang up (size caps)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


def html(title: str, body: str, charset: str = "utf-8") -> tuple[int, dict[str, str], bytes]:
    page = f"<html><head><title>{title}</title></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    return 200, {"Content-Type": f"text/html; charset={charset}"}, page.encode(charset)


PARAGRAPH = "<p>This page explains one part of the service in enough words for extraction to keep it.</p>" * 3


def edge_routes(path: str, count: int, server: Site):
    if path == "/robots.txt":
        return 200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n"
    if path == "/":
        links = "".join(
            f'<a href="{href}">{href}</a> '
            for href in (
                "/private/secret",
                "/loop/a",
                "/flaky",
                "/slow",
                "/big",
                "/latin1-declared-utf8",
                "/utf8-declared-latin1",
                "/calendar/1",
                "/download?file=report",
                "/missing",
                "/faq#top",
                "/faq/?utm_source=newsletter",
                f"{server.other_origin}stolen",
                "mailto:help@example.com",
            )
        )
        return html("Home", PARAGRAPH + links)
    if path in ("/faq", "/faq/"):
        return html(
            "FAQ",
            "<details><summary>Can I pay by card?</summary><p>Yes, every major card.</p></details>"
            "<h2>Do you ship abroad?</h2><p>We ship to thirty countries.</p>" + PARAGRAPH,
        )
    if path.startswith("/loop/"):
        return 302, {"Location": "/loop/b" if path == "/loop/a" else "/loop/a"}, b""
    if path == "/flaky":
        return (500, {"Content-Type": "text/plain"}, b"down") if count <= 2 else html("Flaky", PARAGRAPH)
    if path == "/slow":
        time.sleep(3)
        return html("Slow", PARAGRAPH)
    if path == "/big":
        return html("Big", PARAGRAPH * 2000)
    if path == "/latin1-declared-utf8":
        body = (
            "<html><body><main><p>Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e is served all day at the caf\u00e9 "
            "on the corner of the street.</p></main></body></html>"
        )
        return 200, {"Content-Type": "text/html; charset=utf-8"}, body.encode("latin-1")
    if path == "/utf8-declared-latin1":
        body = (
            "<html><body><main><p>Na\u00efve r\u00e9sum\u00e9s from Z\u00fcrich arrive every Monday "
            "at the office by post.</p></main></body></html>"
        )
        return 200, {"Content-Type": "text/html; charset=iso-8859-1"}, body.encode("utf-8")
    if path.startswith("/calendar/"):
        month = int(path.rsplit("/", 1)[1])
        return html(f"Month {month}", f'<p>Nothing on in month {month}.</p><a href="/calendar/{month + 1}">next</a>')
    if path == "/download":
        return 200, {"Content-Type": "application/pdf"}, b"%PDF-1.4 " + b"x" * 5000
    if path.startswith("/private/"):
        return html("Secret", PARAGRAPH)
    return 404, {"Content-Type": "text/html"}, b"<html><body>not found</body></html>"


def other_routes(path: str, count: int, server: Site):
    return html("Other", PARAGRAPH)


@contextlib.contextmanager
def edge_sites() -> Iterator[tuple[Site, Site]]:
    other = Site(other_routes)
    site = Site(edge_routes, other_origin=other.url)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (site, other)]
    for thread in threads:
        thread.start()
    try:
        yield site, other
    finally:
        for server in (site, other):
            server.shutdown()
            server.server_close()


def linear_routes(pages: int, delay: float):
    """A site of ``pages`` pages in a chain with side links, each served after ``delay`` seconds."""

    def routes(path: str, count: int, server: Site):
        if path == "/robots.txt":
            return 404, {}, b""
        number = 0 if path == "/" else int(path.strip("/").split("/")[-1])
        time.sleep(delay)
        links = "".join(
            f'<a href="/p/{n}">page {n}</a> ' for n in (number + 1, number * 2 + 1, number * 3 + 2) if n < pages
        )
        return html(f"Page {number}", f"<p>Page {number} of the generated site has its own words.</p>" + links)

    return routes


def crawl_command(url: str, out: str, *options: str) -> list[str]:
    """``corpusmill crawl`` of a generated site: politeness off, every depth followed."""
    return [sys.executable, "-m", "corpusmill", "crawl", url, "--out", out, "--fast", "--max-depth", "200", *options]
