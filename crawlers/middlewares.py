"""Downloader middlewares: stay on the allowed origins, and back off before retries."""

from __future__ import annotations

import asyncio

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest

from crawlers.urls import origin


class OffsiteRequest(IgnoreRequest):
    """A request (usually a redirect) that would leave the allowed origins."""


class OriginGuardMiddleware:
    """Drops any request whose scheme, host *and port* are not allowed, before robots.txt.

    Scrapy's own offsite check compares domains only, so ``127.0.0.1:8001`` would pass for
    ``127.0.0.1:8000``, and its robots.txt middleware would fetch the other host's robots.txt.
    This runs first (priority 40) and also sees every redirect target.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OriginGuardMiddleware:
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        allowed = getattr(self.crawler.spider, "allowed_origins", set())
        if origin(request.url) not in allowed:
            self.crawler.stats.inc_value("corpusmill/offsite_blocked")
            raise OffsiteRequest(f"offsite: {request.url}")


class BackoffMiddleware:
    """Waits ``base * 2**(n-1)`` seconds (capped) before the n-th retry of a request."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, cap

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffMiddleware:
        return cls(
            crawler.settings.getfloat("RETRY_BACKOFF_BASE", 0.5), crawler.settings.getfloat("RETRY_BACKOFF_MAX", 30)
        )

    async def process_request(self, request: Request) -> None:
        retries = request.meta.get("retry_times", 0)
        if retries:
            await asyncio.sleep(min(self.cap, self.base * 2 ** (retries - 1)))
