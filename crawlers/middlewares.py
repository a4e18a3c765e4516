"""Downloader middlewares: stay on the allowed origins, and back off before retries."""

from __future__ import annotations

import asyncio

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.utils.misc import build_from_crawler

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


BLOCKED_HOSTS = frozenset({"169.254.169.254", "fd00:ec2::254", "100.100.100.200", "metadata.google.internal"})


def private_address(host: str) -> str | None:
    """The private, loopback, link-local or metadata address ``host`` resolves to, if any."""
    import ipaddress
    import socket

    if host.lower() in BLOCKED_HOSTS:
        return host
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return None  # unresolvable: the download itself will fail and say so
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_reserved
            or ip.is_multicast
            or ip.is_unspecified
            or str(ip) in BLOCKED_HOSTS
        ):
            return str(ip)
    return None


class PrivateTarget(IgnoreRequest):
    """A request (or redirect) to a loopback, private, link-local or metadata address."""


class PrivateTargetGuardMiddleware:
    """For crawls submitted to the service: every request, redirects included, is resolved and
    refused when it points inside the operator's network (unless ``allow_private_targets``)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.verdicts: dict[str, str | None] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PrivateTargetGuardMiddleware:
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        from urllib.parse import urlsplit

        host = urlsplit(request.url).hostname or ""
        if host not in self.verdicts:
            self.verdicts[host] = private_address(host)
        if self.verdicts[host]:
            raise PrivateTarget(f"private target: {host} resolves to {self.verdicts[host]}")


DISALLOW_ALL = b"User-agent: *\nDisallow: /\n"


class StrictRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt middleware with RFC 9309's rule for an unreachable robots.txt.

    Scrapy parses a 5xx answer's body (usually empty: allow all) and allows all when the fetch
    fails. RFC 9309 section 2.3.1.4: when robots.txt is unreachable through a server error or a
    timeout, the crawler must assume complete disallow. A 4xx stays allow-all (section 2.3.1.3), and
    so does a host that refuses connections: its pages cannot be fetched either.
    """

    async def _parse_robots(self, response: Response, netloc: str, request: Request) -> None:
        if response.status >= 500:
            self._stats.inc_value("corpusmill/robots_unavailable")
            response = response.replace(body=DISALLOW_ALL)
        await super()._parse_robots(response, netloc, request)

    def _robots_error(self, exc: Exception, netloc: str) -> None:
        if isinstance(exc, IgnoreRequest) or "Timeout" not in type(exc).__name__:
            super()._robots_error(exc, netloc)
            return
        self._stats.inc_value("corpusmill/robots_unavailable")
        parser = build_from_crawler(self._parserimpl, self.crawler, DISALLOW_ALL)
        waiting = self._parsers[netloc]
        self._parsers[netloc] = parser
        waiting.callback(parser)  # type: ignore[union-attr]
