"""A polite whole-site spider: start URLs and sitemaps, same-origin links, depth and page limits."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import regex
import scrapy
from scrapy import Request, signals
from scrapy.exceptions import IgnoreRequest, StopDownload
from scrapy.http import Response
from scrapy.linkextractors import IGNORED_EXTENSIONS, LinkExtractor
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.sitemap import Sitemap, sitemap_urls_from_robots
from twisted.internet.error import ConnectionRefusedError as TxConnectionRefused
from twisted.internet.error import DNSLookupError, TCPTimedOutError
from twisted.internet.error import TimeoutError as TxTimeoutError
from twisted.python.failure import Failure

from crawlers.items import FailedPage, PageItem, SkippedLink
from crawlers.journal import CrawlState
from crawlers.middlewares import OffsiteRequest, PrivateTarget
from crawlers.options import CrawlOptions
from crawlers.urls import canonical_url, origin

HTML_TYPES = (b"text/html", b"application/xhtml+xml")
LEASE = "corpusmill_lease"
URL_PATTERN_SECONDS = 0.05
"""Time one --allow/--deny pattern may spend on one URL."""
"""Request meta key: the shared queue's claim on this request (see :mod:`crawlers.shared`)."""
BINARY_EXTENSIONS = frozenset(IGNORED_EXTENSIONS)
"""Scrapy's list (images, audio, video, office files, archives, css, js …): never fetched."""


def _extension(url: str) -> str:
    path = urlsplit(url).path
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def dataset_name(url: str) -> str:
    """``docs.example.com`` for ``https://docs.example.com/…`` (with ``-PORT`` on a non-default port)."""
    scheme, host, port = origin(url)
    default = {"http": 80, "https": 443}.get(scheme)
    return host if port == default else f"{host}-{port}"


def failure_reason(failure: Failure) -> str:
    """The reject reason for a request that produced no response body to parse."""
    exc = failure.value
    if isinstance(exc, HttpError):
        return f"http_{exc.response.status}"
    if isinstance(exc, OffsiteRequest):
        return "offsite"
    if isinstance(exc, PrivateTarget):
        return "private_target"
    if isinstance(exc, StopDownload):
        return "non_html"
    if isinstance(exc, IgnoreRequest):
        message = str(exc)
        if "DOWNLOAD_MAXSIZE" in message:  # a compressed body that inflates past the cap
            return "too_large"
        if "robots.txt" in message:
            return "robots_disallowed"
        if "redirection" in message:
            return "too_many_redirects"
        return "ignored"
    name = type(exc).__name__
    if isinstance(exc, (TxTimeoutError, TCPTimedOutError)) or "Timeout" in name:
        return "timeout"
    if name == "DownloadCancelledError" or "maxsize" in str(exc).lower():
        return "too_large"
    if isinstance(exc, (TxConnectionRefused, DNSLookupError)) or name in (
        "DownloadConnectionRefusedError",
        "CannotResolveHostError",
    ):
        return "unreachable"
    return "download_error"


class SiteSpider(scrapy.Spider):
    name = "corpusmill-site"

    def __init__(self, options: CrawlOptions, state: CrawlState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options = options
        self.state = state
        self.allowed_origins = {origin(url) for url in options.start_urls}
        self.dataset = options.dataset or dataset_name(options.start_urls[0])
        self.allow = [regex.compile(p) for p in options.allow]
        self.deny = [regex.compile(p) for p in options.deny]
        self.links = LinkExtractor(tags=("a", "area", "link"), deny_extensions=[], unique=True)
        self.not_followed: set[str] = set()
        self.skipped: list[SkippedLink] = []
        """Links not followed (off-site, filtered, too deep, over the limit), to be reported once."""

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> SiteSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.on_headers, signal=signals.headers_received)
        return spider

    def on_headers(self, headers: Any, body_length: int, request: Request, spider: Any) -> None:
        """Stop downloading binary pages (PDFs, images …) as soon as their headers arrive.

        The signal carries no status, so text types are left alone: a ``500`` with a
        ``text/plain`` body must still reach the retry middleware.
        """
        if request.meta.get("corpusmill_kind") != "page":
            return
        content_type = (headers.get(b"Content-Type") or b"").split(b";")[0].strip().lower()
        if content_type and not content_type.startswith(b"text/") and content_type not in HTML_TYPES:
            raise StopDownload(fail=True)

    # -- scheduling ------------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        if self.state.resuming:
            for entry in self.state.pending():
                yield self._page_request(entry["url"], entry["depth"])
            return
        for url in self.options.start_urls:
            request = self.schedule(url, 0)
            if request is not None:
                yield request
        for site in sorted({f"{s}://{h}:{p}" for s, h, p in self.allowed_origins}):
            yield Request(
                f"{site}/robots.txt",
                callback=self.parse_robots,
                errback=self.ignore,
                meta={"dont_obey_robotstxt": True, "corpusmill_kind": "robots", "dont_retry": True},
            )
        for url in self.options.sitemaps:
            yield Request(url, callback=self.parse_sitemap, errback=self.ignore, meta={"corpusmill_kind": "sitemap"})

    def schedule(self, url: str, depth: int) -> Request | None:
        """A request for ``url`` unless it was seen, is off-site, filtered, too deep or over the limit."""
        canonical = canonical_url(url)
        if self.state.seen(canonical):
            return None
        reason = None
        if origin(url) not in self.allowed_origins:
            reason = "offsite"
        elif self._filtered(url):
            reason = "filtered_by_pattern"
        elif _extension(url) in BINARY_EXTENSIONS:
            reason = "non_html_extension"
        elif depth > self.options.max_depth:
            reason = "max_depth"
        elif not self.state.claim(url, canonical, depth, self.options.max_pages):
            reason = "max_pages"
        if reason is not None:
            if canonical not in self.not_followed:
                self.not_followed.add(canonical)
                self.skipped.append(SkippedLink(url, canonical, reason))
            return None
        return self._page_request(url, depth)

    def _filtered(self, url: str) -> bool:
        """Outside ``--allow`` or inside ``--deny``; a pattern that runs past its time budget on a
        URL (catastrophic backtracking) filters the URL out rather than hanging the crawl."""
        try:
            if self.allow and not any(p.search(url, timeout=URL_PATTERN_SECONDS) for p in self.allow):
                return True
            return any(p.search(url, timeout=URL_PATTERN_SECONDS) for p in self.deny)
        except TimeoutError:
            return True

    def _page_request(self, url: str, depth: int) -> Request:
        return Request(
            url,
            callback=self.parse,
            errback=self.failed,
            dont_filter=True,
            meta={"depth": depth, "corpusmill_kind": "page", "corpusmill_url": url},
        )

    # -- callbacks -------------------------------------------------------------------------------

    def parse(self, response: Response) -> Iterator[Any]:
        depth = response.meta["depth"]
        requested = response.meta["corpusmill_url"]
        content_type = response.headers.get(b"Content-Type", b"").split(b";")[0].strip().lower()
        if content_type not in HTML_TYPES:
            detail = {"content_type": content_type.decode("latin-1")}
            yield self._reject(requested, "non_html", detail, response.meta.get(LEASE))
            return
        for link in self.links.extract_links(response):
            request = self.schedule(link.url, depth + 1)
            if request is not None:
                yield request
        yield from self._drain_skips()
        declared = response.headers.get(b"Content-Type", b"").decode("latin-1")
        charset = re.search(r"charset=([\w-]+)", declared, re.I)
        yield PageItem(
            url=response.url,
            requested_url=requested,
            canonical=canonical_url(requested),
            final_canonical=canonical_url(response.url),
            depth=depth,
            status=response.status,
            declared_encoding=charset.group(1) if charset else None,
            body=response.body,
            fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
            lease=response.meta.get(LEASE),
        )

    def failed(self, failure: Failure) -> Iterator[FailedPage]:
        request = failure.request  # type: ignore[attr-defined]
        url = request.meta.get("corpusmill_url", request.url)
        detail = {"error": str(failure.value)[:300]}
        yield self._reject(url, failure_reason(failure), detail, request.meta.get(LEASE))

    def _reject(self, url: str, reason: str, detail: dict[str, Any], lease: str | None) -> FailedPage:
        return FailedPage(url, canonical_url(url), reason, detail, lease)

    def _drain_skips(self) -> Iterator[SkippedLink]:
        skipped, self.skipped = self.skipped, []
        yield from skipped

    def parse_robots(self, response: Response) -> Iterator[Request]:
        for url in sitemap_urls_from_robots(response.text, base_url=response.url):
            if origin(url) in self.allowed_origins:
                yield Request(
                    url, callback=self.parse_sitemap, errback=self.ignore, meta={"corpusmill_kind": "sitemap"}
                )
        self.state.release(response.meta.get(LEASE))

    def parse_sitemap(self, response: Response) -> Iterator[Any]:
        try:
            sitemap = Sitemap(response.body)
        except Exception:
            self.state.release(response.meta.get(LEASE))
            return
        for entry in sitemap:
            url = entry.get("loc")
            if not url or origin(url) not in self.allowed_origins:
                continue
            if sitemap.type == "sitemapindex":
                yield Request(
                    url, callback=self.parse_sitemap, errback=self.ignore, meta={"corpusmill_kind": "sitemap"}
                )
            else:
                request = self.schedule(url, 0)
                if request is not None:
                    yield request
        yield from self._drain_skips()
        self.state.release(response.meta.get(LEASE))

    def ignore(self, failure: Failure) -> None:
        """robots.txt and sitemaps are optional: a 404 there is not a rejected page."""
        self.state.release(failure.request.meta.get(LEASE))  # type: ignore[attr-defined]
