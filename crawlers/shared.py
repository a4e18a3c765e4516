"""One crawl shared by many processes through Redis: scrapy-redis's scheduler over a leased queue.

scrapy-redis shares the request queue and a fingerprint set between processes, but a request popped
by a worker that then dies is gone, and nothing tells an idle worker whether others still have pages
in hand. Here every pop leases the request to its worker (``inflight:<worker>``) in one Lua script,
and the lease ends in the same script that records the page's outcome and output lines, so each page
is recorded once. Workers renew a heartbeat; an idle worker puts the leases of a worker whose
heartbeat expired back on the queue, and stops only when the queue is empty, no lease is held and
every claimed page has an outcome. Pages are claimed by canonical URL when pushed (the page limit is
checked in that script); robots.txt and sitemaps go through scrapy-redis's fingerprint set.

Keys under :meth:`CrawlOptions.shared_key`: ``requests`` (list), ``fingerprints`` (set), ``seen``
(claimed canonical URLs), ``done`` (canonical → outcome), ``written`` (canonical URLs with records),
``records`` and ``rejects`` (JSON lines), ``skipped`` (links reported as not followed), ``workers``,
``alive:<worker>`` (heartbeat, expires), ``inflight:<worker>`` (lease → request), ``leases``
(counter), ``pages_by_worker``. They stay after the crawl: a rerun with the same options resumes an
unfinished crawl, or writes a finished one's output again.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any

import redis
from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider
from scrapy.utils.request import request_from_dict
from scrapy_redis.queue import FifoQueue
from twisted.internet import task

from corpusmill.io import atomic_write, write_json
from crawlers import requestcodec
from crawlers.options import CrawlOptions
from crawlers.spiders.site import LEASE
from crawlers.urls import canonical_url

logger = logging.getLogger(__name__)

MAX_BAD_POPS = 100
"""Malformed queue entries one ``pop`` skips before it yields to the engine."""

PUSH_PAGE = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('SCARD', KEYS[1]) >= limit then
  if redis.call('HSETNX', KEYS[3], ARGV[1], '1') == 1 then redis.call('RPUSH', KEYS[4], ARGV[4]) end
  return -1
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[2])
return 1
"""
"""Claim a page by canonical URL and queue it, or report it over the page limit (once)."""

HAND_OVER = """
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
"""
"""A retry or redirect replaces its leased request on the queue."""

LEASE_NEXT = """
local data = redis.call('RPOP', KEYS[1])
if not data then return nil end
local lease = ARGV[1] .. ':' .. redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], lease, data)
return {lease, data}
"""

COMPLETE = """
local page = cjson.decode(ARGV[1])
if page.lease ~= '' then redis.call('HDEL', KEYS[5], page.lease) end
if redis.call('HSETNX', KEYS[1], page.canonical, page.outcome) == 0 then return 0 end
local lines = KEYS[2]
if page.rejected then lines = KEYS[3] end
for _, line in ipairs(page.lines) do redis.call('RPUSH', lines, line) end
for _, alias in ipairs(page.aliases) do redis.call('SADD', KEYS[4], alias) end
redis.call('HINCRBY', KEYS[6], page.worker, 1)
return 1
"""
"""Record a page's outcome and lines unless another worker already did; end its lease either way."""

REPORT_SKIP = """
if redis.call('HSETNX', KEYS[1], ARGV[1], '1') == 1 then redis.call('RPUSH', KEYS[2], ARGV[2]) end
"""

RECLAIM = """
local requests = redis.call('HVALS', KEYS[1])
for _, data in ipairs(requests) do redis.call('RPUSH', KEYS[2], data) end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
return #requests
"""
"""Put a lost worker's leased requests back at the head of the queue and forget the worker."""


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=10, socket_timeout=30, retry_on_timeout=True)


class SharedCrawlState:
    """:class:`crawlers.journal.CrawlState` in Redis, for one worker of a shared crawl."""

    resuming = False  # the queue and the leases live in Redis: nothing to re-request at start

    def __init__(self, job_dir: Path, options: CrawlOptions) -> None:
        assert options.redis is not None
        self.job_dir = job_dir
        job_dir.mkdir(parents=True, exist_ok=True)
        self.redis = connect(options.redis)
        self.prefix = options.shared_key()
        self.worker = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.max_pages = options.max_pages or 0
        self.timeout_ms = int(options.worker_timeout * 1000)
        self.known: set[str] = set()
        """Canonical URLs this worker already offered to the queue: spares repeated round trips."""
        self._push_page = self.redis.register_script(PUSH_PAGE)
        self._hand_over = self.redis.register_script(HAND_OVER)
        self._lease_next = self.redis.register_script(LEASE_NEXT)
        self._complete = self.redis.register_script(COMPLETE)
        self._report_skip = self.redis.register_script(REPORT_SKIP)
        self._reclaim = self.redis.register_script(RECLAIM)
        self.heartbeat()

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @property
    def inflight(self) -> str:
        return self.key(f"inflight:{self.worker}")

    # -- CrawlState ---------------------------------------------------------------------------

    def pending(self) -> list[dict[str, Any]]:
        return []

    def seen(self, canonical: str) -> bool:
        return canonical in self.known

    def claim(self, url: str, canonical: str, depth: int, max_pages: int | None) -> bool:
        """Always True here: the claim and the page limit are settled atomically in :meth:`push_page`."""
        self.known.add(canonical)
        return True

    def was_written(self, canonical: str) -> bool:
        return bool(self.redis.sismember(self.key("written"), canonical))

    def complete(
        self, canonical: str, outcome: str, lines: list[str], *, rejected: bool, aliases: set[str], lease: str | None
    ) -> bool:
        page = {
            "canonical": canonical,
            "outcome": outcome,
            "lines": lines,
            "rejected": rejected,
            "aliases": sorted(aliases),
            "lease": lease or "",
            "worker": self.worker,
        }
        keys = [self.key(k) for k in ("done", "records", "rejects", "written")]
        return bool(self._complete(keys=[*keys, self.inflight, self.key("pages_by_worker")], args=[json.dumps(page)]))

    def report_skip(self, canonical: str, line: str) -> None:
        self._report_skip(keys=[self.key("skipped"), self.key("rejects")], args=[canonical, line])

    def release(self, lease: str | None) -> None:
        if lease:
            self.redis.hdel(self.inflight, lease)

    def close(self) -> None:
        """Leave the crawl: anything still leased goes back on the queue for the other workers."""
        self._reclaim(keys=[self.inflight, self.key("requests"), self.key("workers")], args=[self.worker])
        self.redis.delete(self.key(f"alive:{self.worker}"))

    # -- the queue -----------------------------------------------------------------------------

    def push_page(self, url: str, data: bytes) -> None:
        canonical = canonical_url(url)
        over_limit = json.dumps({"url": url, "reason": "max_pages", "requested": False}, sort_keys=True)
        keys = [self.key(k) for k in ("seen", "requests", "skipped", "rejects")]
        self._push_page(keys=keys, args=[canonical, data, self.max_pages, over_limit])

    def hand_over(self, lease: str, data: bytes) -> None:
        self._hand_over(keys=[self.key("requests"), self.inflight], args=[lease, data])

    def lease_next(self) -> tuple[str, bytes] | None:
        leased = self._lease_next(keys=[self.key("requests"), self.inflight, self.key("leases")], args=[self.worker])
        return (leased[0].decode(), leased[1]) if leased else None

    # -- workers -------------------------------------------------------------------------------

    @property
    def heartbeat_interval(self) -> float:
        return self.timeout_ms / 4000

    def heartbeat(self) -> dict[str, int]:
        """Renew this worker's lease on life; the whole crawl's progress, for the progress line."""
        with self.redis.pipeline() as pipe:
            pipe.set(self.key(f"alive:{self.worker}"), 1, px=self.timeout_ms)
            pipe.sadd(self.key("workers"), self.worker)
            pipe.hlen(self.key("done"))
            pipe.scard(self.key("seen"))
            pipe.llen(self.key("requests"))
            pipe.scard(self.key("workers"))
            *_, done, claimed, queued, workers = pipe.execute()
        return {"done": done, "claimed": claimed, "queued": queued, "workers": workers}

    def reclaim_lost(self) -> int:
        """Requeue the leases of every worker whose heartbeat expired; how many requests."""
        requeued = 0
        for member in self.redis.smembers(self.key("workers")):
            worker = member.decode()
            if worker != self.worker and not self.redis.exists(self.key(f"alive:{worker}")):
                inflight = self.key(f"inflight:{worker}")
                requeued += self._reclaim(keys=[inflight, self.key("requests"), self.key("workers")], args=[worker])
        return requeued

    def settle_orphans(self, spider: Spider) -> int:
        """Leases this worker holds while idle can never end: record their pages as rejected.

        Scrapy dropped the request somewhere without a callback (a spider error, a filtered
        redirect); refetching could fail the same way forever.
        """
        orphans = self.redis.hgetall(self.inflight)
        for lease_bytes, data in orphans.items():
            lease = lease_bytes.decode()
            try:
                request = request_from_dict(requestcodec.loads(data), spider=spider)
            except (requestcodec.BadRequestData, AttributeError, ValueError):
                self.release(lease)
                continue
            if request.meta.get("corpusmill_kind") != "page":
                self.release(lease)
                continue
            url = request.meta["corpusmill_url"]
            line = json.dumps({"url": url, "reason": "worker_error", "requested": True, "detail": {}}, sort_keys=True)
            self.complete(canonical_url(url), "worker_error", [line], rejected=True, aliases=set(), lease=lease)
        return len(orphans)

    def work_left(self) -> bool:
        """Requests queued or leased anywhere, or a claimed page without an outcome yet."""
        with self.redis.pipeline() as pipe:
            pipe.llen(self.key("requests"))
            pipe.scard(self.key("seen"))
            pipe.hlen(self.key("done"))
            pipe.smembers(self.key("workers"))
            queued, claimed, done, workers = pipe.execute()
        if queued or claimed != done:
            return True
        with self.redis.pipeline() as pipe:
            for worker in workers:
                pipe.hlen(self.key(f"inflight:{worker.decode()}"))
            return any(pipe.execute())

    # -- output --------------------------------------------------------------------------------

    def export(self) -> None:
        """Write the whole crawl's outputs into the job dir, as a one-process crawl leaves them."""
        for name in ("records", "rejects"):
            with atomic_write(self.job_dir / f"{name}.jsonl", "wb") as handle:
                for start in range(0, self.redis.llen(self.key(name)), 1000):
                    for line in self.redis.lrange(self.key(name), start, start + 999):
                        handle.write(line + b"\n")
        with atomic_write(self.job_dir / "done.jsonl", "w") as handle:
            for canonical, outcome in self.redis.hscan_iter(self.key("done")):
                handle.write(json.dumps({"canonical": canonical.decode(), "outcome": outcome.decode()}) + "\n")
        pages_by_worker = {w.decode(): int(n) for w, n in self.redis.hgetall(self.key("pages_by_worker")).items()}
        write_json(self.job_dir / "shared.json", {"worker": self.worker, "pages_by_worker": pages_by_worker})


class LeasedQueue(FifoQueue):
    """scrapy-redis's FIFO queue whose pops are leased to this worker until the page is recorded."""

    def __init__(self, server: redis.Redis, spider: Spider, key: str, serializer: Any = None) -> None:
        super().__init__(server, spider, key, serializer)
        self.state: SharedCrawlState = spider.state  # type: ignore[attr-defined]

    def push(self, request: Any) -> None:
        lease = request.meta.get(LEASE)
        if lease is not None:
            request = request.replace(meta={k: v for k, v in request.meta.items() if k != LEASE})
        data = self._encode_request(request)
        if lease is not None:
            self.state.hand_over(lease, data)
        elif request.meta.get("corpusmill_kind") == "page":
            self.state.push_page(request.meta["corpusmill_url"], data)
        else:
            self.server.lpush(self.key, data)

    def pop(self, timeout: int = 0) -> Any:
        """The next request, leased; entries that are not requests this crawl wrote (a poisoned
        or foreign queue) are dropped with their lease and counted, never executed."""
        for _ in range(MAX_BAD_POPS):
            leased = self.state.lease_next()
            if leased is None:
                return None
            lease, data = leased
            try:
                request = self._decode_request(data)
            except (requestcodec.BadRequestData, AttributeError, ValueError) as exc:
                self.state.release(lease)
                self.spider.crawler.stats.inc_value("corpusmill/bad_queue_entries")
                logger.warning("dropped a queue entry that is not a corpusmill request: %s", exc)
                continue
            request.meta[LEASE] = lease
            return request
        return None


class SharedCrawlExtension:
    """Heartbeat, prompt pickup of shared work, recovery of lost workers' pages, the stop condition."""

    POLL_SECONDS = 0.2

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.loops: list[task.LoopingCall] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SharedCrawlExtension:
        extension = cls(crawler)
        crawler.signals.connect(extension.opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.idle, signal=signals.spider_idle)
        crawler.signals.connect(extension.closed, signal=signals.spider_closed)
        return extension

    def opened(self, spider: Spider) -> None:
        state: SharedCrawlState = spider.state  # type: ignore[attr-defined]
        self.loops = [task.LoopingCall(self.beat, state), task.LoopingCall(self.poll)]
        self.loops[0].start(state.heartbeat_interval)
        self.loops[1].start(self.POLL_SECONDS)

    def beat(self, state: SharedCrawlState) -> None:
        for name, value in state.heartbeat().items():
            self.crawler.stats.set_value(f"corpusmill/crawl_{name}", value)

    def poll(self) -> None:
        """Have Scrapy look at the shared queue, and at whether the crawl is over, now.

        Scrapy asks its scheduler only after its own events and on a 5 s heartbeat, so a worker
        that ran dry waits up to 5 s for pages other workers queue (scrapy-redis#74), and an idle
        worker notices the end of the crawl up to 5 s late: two workers then crawl hardly faster
        than one. Scrapy has no public call for this; ``nextcall`` is the engine's own "go look".
        """
        engine = self.crawler.engine
        if not engine.needs_backout():
            engine._slot.nextcall.schedule()  # type: ignore[union-attr]

    def idle(self, spider: Spider) -> None:
        """Called again at the next :meth:`poll` while we raise ``DontCloseSpider``."""
        state: SharedCrawlState = spider.state  # type: ignore[attr-defined]
        requeued = state.reclaim_lost()
        if requeued:
            logger.warning("requeued %d requests of lost crawl workers", requeued)
            self.crawler.stats.inc_value("corpusmill/requeued_from_lost_workers", requeued)
        orphans = state.settle_orphans(spider)
        if orphans:
            logger.warning("settled %d leases whose requests Scrapy dropped", orphans)
        if state.work_left():
            raise DontCloseSpider

    def closed(self, spider: Spider, reason: str) -> None:
        state: SharedCrawlState = spider.state  # type: ignore[attr-defined]
        for loop in self.loops:
            if loop.running:
                loop.stop()
        if reason == "finished" and not state.work_left():
            state.export()
