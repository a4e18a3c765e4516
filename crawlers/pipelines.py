"""Item pipelines: extraction (under a timeout, in worker processes) and output with accounting.

Every page the spider yields ends in exactly one outcome: ``written`` (one or more records) or a
reject reason (a :class:`~crawlers.items.PageRejected` raised anywhere in the pipelines); links
that were never requested are reported once with why (off-site, too deep…).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from twisted.internet import task

from corpusmill.io import write_json
from corpusmill.processes import die_with
from crawlers.extract import extract_from_bytes, page_records
from crawlers.items import FailedPage, PageItem, PageRejected, SkippedLink
from crawlers.journal import CrawlState


class ExtractionFailed(Exception):
    """The extraction worker pool broke twice on one page."""


class ExtractionPipeline:
    """Runs :func:`crawlers.extract.extract_from_bytes` in worker processes with a per-page timeout.

    trafilatura has no timeout; a page that exceeds ``extract_timeout`` has its worker killed and
    is extracted again with BeautifulSoup only (``meta.extractor`` says which one was used).
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.timeout = crawler.spider.options.extract_timeout  # type: ignore[union-attr]
        self.workers = os.cpu_count() or 1
        self.pool = self._new_pool()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ExtractionPipeline:
        return cls(crawler)

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        # The forkserver imports the extraction code once and every worker forks with it loaded,
        # instead of each worker importing trafilatura, lxml, bs4 and the schema itself.
        context.set_forkserver_preload(["crawlers.extract"])
        return concurrent.futures.ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=die_with,
            initargs=(os.getpid(),),
        )

    def _kill_pool(self) -> None:
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    async def _run(self, item: PageItem, use_trafilatura: bool) -> dict[str, Any]:
        args = (item.body, item.declared_encoding, item.url, use_trafilatura)
        for _attempt in range(2):
            pool = self.pool
            try:
                future = asyncio.wrap_future(pool.submit(extract_from_bytes, *args))
                return await asyncio.wait_for(future, self.timeout)
            except concurrent.futures.process.BrokenProcessPool:
                if pool is self.pool:  # another page's timeout already replaced it otherwise
                    self._kill_pool()
        raise ExtractionFailed

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, PageItem):
            return item
        try:
            extracted = await self._run(item, use_trafilatura=True)
        except ExtractionFailed:
            raise PageRejected("extraction_failed") from None
        except TimeoutError:
            self.crawler.stats.inc_value("corpusmill/extraction_timeouts")
            self._kill_pool()
            try:
                extracted = await self._run(item, use_trafilatura=False)
            except (TimeoutError, ExtractionFailed):
                self._kill_pool()
                raise PageRejected("extraction_timeout") from None
        item.extracted, item.body = extracted, None
        return item

    def close_spider(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class OutputPipeline:
    """Records each page's outcome with its records or reject once, through the crawl state.

    Pages are rejected by raising :class:`PageRejected` here or upstream; :meth:`item_dropped`
    (Scrapy's ``item_dropped`` signal) writes each reject with its reason."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.state: CrawlState = crawler.spider.state  # type: ignore[union-attr]
        self.dataset: str = crawler.spider.dataset  # type: ignore[union-attr]

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OutputPipeline:
        pipeline = cls(crawler)
        crawler.signals.connect(pipeline.item_dropped, signal=signals.item_dropped)
        return pipeline

    def _count(self, key: str, n: int = 1) -> None:
        self.crawler.stats.inc_value(f"corpusmill/{key}", n)

    def process_item(self, item: Any) -> Any:
        if isinstance(item, SkippedLink):
            line = json.dumps({"url": item.url, "reason": item.reason, "requested": False}, sort_keys=True)
            self.state.report_skip(item.canonical, line)
            self._count(f"not_followed/{item.reason}")
            return item
        if isinstance(item, FailedPage):
            raise PageRejected(item.reason, item.detail)
        assert isinstance(item, PageItem) and item.extracted is not None
        if item.final_canonical != item.canonical and self.state.was_written(item.final_canonical):
            raise PageRejected("duplicate_redirect", {"to": item.url})
        records = page_records(
            item.extracted, item.url, self.dataset, "crawl", item.fetched_at, item.depth, item.requested_url
        )
        if not records:
            raise PageRejected("extraction_empty")
        lines = [r.to_json() for r in records]
        aliases = {item.canonical, item.final_canonical}
        if self.state.complete(item.canonical, "written", lines, rejected=False, aliases=aliases, lease=item.lease):
            self._count("pages")
            self._count("records", len(records))
            self._count("faq_pairs", sum(r.messages is not None for r in records))
        return item

    def item_dropped(self, item: Any, exception: BaseException) -> None:
        """A rejected page: its reject line and outcome, once."""
        if not isinstance(exception, PageRejected) or not isinstance(item, (PageItem, FailedPage)):
            return
        line = json.dumps(
            {"url": item.url, "reason": exception.reason, "requested": True, "detail": exception.detail},
            sort_keys=True,
        )
        if self.state.complete(
            item.canonical, exception.reason, [line], rejected=True, aliases=set(), lease=item.lease
        ):
            self._count("pages")
            self._count(f"rejected/{exception.reason}")


class ProgressExtension:
    """Writes ``progress.json`` in the job dir twice a second for the parent's progress line."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.started = time.monotonic()
        self.loop: task.LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ProgressExtension:
        extension = cls(crawler)
        crawler.signals.connect(extension.opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.closed, signal=signals.spider_closed)
        return extension

    def snapshot(self) -> dict[str, Any]:
        stats = self.crawler.stats.get_stats()
        prefix = "corpusmill/"
        counts = {k[len(prefix) :]: v for k, v in stats.items() if isinstance(k, str) and k.startswith(prefix)}
        return {"elapsed": round(time.monotonic() - self.started, 2), **counts}

    def write(self) -> None:
        write_json(Path(self.crawler.spider.state.job_dir) / "progress.json", self.snapshot())  # type: ignore[union-attr]

    def opened(self, spider: Any) -> None:
        self.loop = task.LoopingCall(self.write)
        self.loop.start(0.5)

    def closed(self, spider: Any, reason: str) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.write()
