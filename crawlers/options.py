"""Crawl options: one model shared by the CLI, the build config's ``crawl`` source and the spider."""

from __future__ import annotations

import hashlib
import json
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from corpusmill import __version__
from corpusmill.validators import check_regexes

USER_AGENT = f"corpusmill/{__version__}"


class CrawlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    start_urls: list[str] = Field(min_length=1)
    sitemaps: list[str] = []
    """Sitemap URLs to read besides those named in each start host's robots.txt."""
    dataset: str | None = None
    max_pages: int | None = Field(default=None, gt=0)
    max_depth: int = Field(default=10, ge=0)
    allow: list[str] = []
    """Only follow URLs matching one of these regular expressions (when given)."""
    deny: list[str] = []
    fast: bool = False
    """Politeness off (no AutoThrottle, no delay, high concurrency): for sites you own."""
    obey_robots: bool = True
    timeout: float = Field(default=30.0, gt=0)
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    retries: int = Field(default=2, ge=0)
    max_redirects: int = Field(default=5, ge=0)
    backoff: float = Field(default=0.5, ge=0)
    """Seconds before the first retry; doubles on each further retry."""
    block_private_targets: bool = False
    """Refuse every request (redirects too) to loopback, private, link-local or metadata addresses
    (the service sets this for submitted crawls)."""
    extract_timeout: float = Field(default=20.0, gt=0)
    """Seconds one page's extraction may take before the BeautifulSoup fallback is used."""
    concurrency: int | None = Field(default=None, gt=0)
    """Requests in flight at once in this crawl process (default 16 polite, 64 with ``fast``)."""
    redis: str | None = None
    """``redis://host:port/db``: share the queue, seen set and outputs with every crawl process
    started with the same options (scrapy-redis), on this machine or others."""
    worker_timeout: float = Field(default=30.0, gt=0)
    """Seconds without a heartbeat after which a shared-crawl worker counts as lost and its
    in-flight pages go back to the queue."""

    @field_validator("start_urls", "sitemaps")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"not an http(s) URL: {url!r}")
        return urls

    _regexes = field_validator("allow", "deny")(check_regexes)

    @field_validator("redis")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^(rediss?|unix)://\S+$", url):
            raise ValueError(f"not a redis:// URL: {url!r}")
        return url

    def shared_key(self) -> str:
        """Redis key prefix of this crawl: workers started with the same crawl options share it."""
        scope = self.model_dump(
            include={"start_urls", "sitemaps", "dataset", "max_pages", "max_depth", "allow", "deny", "obey_robots"}
        )
        digest = hashlib.sha256(json.dumps(scope, sort_keys=True).encode()).hexdigest()[:12]
        return f"corpusmill:crawl:{digest}"

    def scrapy_settings(self) -> dict[str, object]:
        polite = not self.fast
        return {
            "USER_AGENT": USER_AGENT,
            "ROBOTSTXT_OBEY": self.obey_robots,
            "ROBOTSTXT_USER_AGENT": "corpusmill",
            "AUTOTHROTTLE_ENABLED": polite,
            "AUTOTHROTTLE_START_DELAY": 1.0,
            "AUTOTHROTTLE_MAX_DELAY": 30.0,
            "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
            "DOWNLOAD_DELAY": 0.25 if polite else 0,
            "CONCURRENT_REQUESTS": self.concurrency or (16 if polite else 64),
            "CONCURRENT_REQUESTS_PER_DOMAIN": self.concurrency or (4 if polite else 64),
            "CONCURRENT_ITEMS": 4,  # per response; Scrapy starts this many tasks for every page
            "DOWNLOAD_TIMEOUT": self.timeout,
            "DOWNLOAD_MAXSIZE": self.max_bytes,
            "DOWNLOAD_WARNSIZE": 0,
            "RETRY_ENABLED": True,
            "RETRY_TIMES": self.retries,
            "RETRY_HTTP_CODES": [500, 502, 503, 504, 522, 524, 408, 429],
            "RETRY_BACKOFF_BASE": self.backoff,
            "RETRY_BACKOFF_MAX": 30.0,
            "REDIRECT_MAX_TIMES": self.max_redirects,
            "DUPEFILTER_CLASS": "scrapy.dupefilters.BaseDupeFilter",
            # Breadth-first, so a page's depth is (close to) its shortest link distance.
            "DEPTH_PRIORITY": 1,
            "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
            "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
            "COOKIES_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "LOG_LEVEL": "ERROR",
            "DOWNLOADER_MIDDLEWARES": {
                **({"crawlers.middlewares.PrivateTargetGuardMiddleware": 30} if self.block_private_targets else {}),
                "crawlers.middlewares.OriginGuardMiddleware": 40,
                "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
                "crawlers.middlewares.StrictRobotsTxtMiddleware": 100,
                "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
                "crawlers.middlewares.BackoffMiddleware": 560,
            },
            "ITEM_PIPELINES": {
                "crawlers.pipelines.ExtractionPipeline": 100,
                "crawlers.pipelines.OutputPipeline": 200,
            },
            "EXTENSIONS": {"crawlers.pipelines.ProgressExtension": 500},
            **(self._shared_settings() if self.redis else {}),
        }

    def _shared_settings(self) -> dict[str, object]:
        """scrapy-redis's scheduler over our leased queue (see :mod:`crawlers.shared`)."""
        key = self.shared_key()
        return {
            "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
            "SCHEDULER_QUEUE_CLASS": "crawlers.shared.LeasedQueue",
            "SCHEDULER_SERIALIZER": "crawlers.requestcodec",  # JSON: a poisoned Redis is never unpickled
            "SCHEDULER_QUEUE_KEY": f"{key}:requests",
            "SCHEDULER_DUPEFILTER_KEY": f"{key}:fingerprints",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_PERSIST": True,
            "REDIS_URL": self.redis,
            "EXTENSIONS": {
                "crawlers.pipelines.ProgressExtension": 500,
                "crawlers.shared.SharedCrawlExtension": 510,
            },
        }
