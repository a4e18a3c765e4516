"""Running a crawl: in a child process, with a live progress line, resumable through a job dir.

Scrapy's Twisted reactor cannot be restarted in one process (``ReactorNotRestartable``), and a
reactor installed before Scrapy's silently yields 0 pages; a fresh ``spawn`` child per crawl
avoids both, and lets the CLI, the build and the service start any number of crawls.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from corpusmill.errors import CorpusmillError, InputError
from corpusmill.io import atomic_write, write_json
from corpusmill.processes import FileLock, LockBusy, die_with_parent
from crawlers.journal import CrawlJournal, CrawlState, read_json_lines
from crawlers.options import CrawlOptions


@dataclass
class CrawlResult:
    out: Path
    rejects: Path
    stats_path: Path
    stats: dict[str, Any]


def _crawl_child(options_data: dict[str, Any], job_dir: str, parent_pid: int) -> None:
    """Child process entry: run one Scrapy crawl to completion.

    It dies with the process that started it, and writes the job dir only while it holds the job
    dir's writer lock: an orphan of a killed crawl can never interleave with a resumed one.
    """
    die_with_parent(parent_pid)
    from scrapy.crawler import CrawlerProcess

    from crawlers.spiders.site import SiteSpider

    FileLock(Path(job_dir) / "writer.lock").acquire()
    options = CrawlOptions.model_validate(options_data)
    logging.basicConfig(filename=Path(job_dir) / "crawl.log", level=logging.INFO)
    state: CrawlState
    if options.redis:
        from crawlers.shared import SharedCrawlState

        state = SharedCrawlState(Path(job_dir), options)
    else:
        state = CrawlJournal(Path(job_dir))
    process = CrawlerProcess({**options.scrapy_settings(), "LOG_INSTALL_ROOT_HANDLER": False})
    process.crawl(SiteSpider, options=options, state=state)
    process.start()
    state.close()


def journal_stats(job_dir: Path) -> dict[str, Any]:
    """Cumulative counts over every run of this job: pages by outcome, records, links not followed."""
    done = Counter(entry["outcome"] for entry in read_json_lines(job_dir / "done.jsonl"))
    rejects = read_json_lines(job_dir / "rejects.jsonl")
    records = read_json_lines(job_dir / "records.jsonl")
    return {
        "pages": sum(done.values()),
        "pages_written": done.get("written", 0),
        "records": len(records),
        "faq_pairs": sum(1 for r in records if r.get("messages")),
        "rejected": dict(sorted(Counter(r["reason"] for r in rejects if r.get("requested")).items())),
        "not_followed": dict(sorted(Counter(r["reason"] for r in rejects if not r.get("requested")).items())),
    }


def crawl(options: CrawlOptions, out: Path, job_dir: Path | None = None, console: Console | None = None) -> CrawlResult:
    """Crawl into ``out`` (JSONL records); ``out`` appears only when the crawl has finished.

    With ``options.redis`` this process is one worker of a shared crawl; ``out`` then holds the
    whole crawl's records, whichever worker fetched them.
    """
    console = console or Console(stderr=True)
    if options.redis:
        _check_redis(options.redis)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = job_dir is None
    job = job_dir or Path(tempfile.mkdtemp(prefix=f".{out.name}.crawl-", dir=out.parent))
    job.mkdir(parents=True, exist_ok=True)
    try:
        lock = FileLock(job / "crawl.lock").acquire(wait=False)
    except LockBusy:
        raise CorpusmillError(f"{job}: another crawl is running in this job dir") from None
    try:
        return _crawl_locked(options, out, job, temporary, console)
    finally:
        lock.release()


def _crawl_locked(options: CrawlOptions, out: Path, job: Path, temporary: bool, console: Console) -> CrawlResult:
    write_json(job / "options.json", options.model_dump(mode="json"))
    (job / "shared.json").unlink(missing_ok=True)
    child = multiprocessing.get_context("spawn").Process(
        target=_crawl_child, args=(options.model_dump(mode="json"), str(job), os.getpid()), name="corpusmill-crawl"
    )
    started = time.monotonic()
    child.start()
    with Live(Text("crawling…"), console=console, transient=True, auto_refresh=False) as live:
        while child.is_alive():
            child.join(0.25)
            if console.is_terminal:
                live.update(progress_line(job / "progress.json", time.monotonic() - started), refresh=True)
    if child.exitcode != 0:
        raise CorpusmillError(
            f"{options.start_urls[0]}: crawl process failed (exit {child.exitcode}); log: {job / 'crawl.log'}"
        )
    if options.redis and not (job / "shared.json").exists():
        raise CorpusmillError(
            f"{options.start_urls[0]}: crawl worker stopped before the shared crawl finished; log: {job / 'crawl.log'}"
        )
    stats = journal_stats(job)
    if options.redis:
        stats["shared"] = json.loads((job / "shared.json").read_text(encoding="utf-8"))
    if stats["pages_written"] == 0:
        raise InputError(options.start_urls[0], _why_nothing(job))
    stats["seconds"] = round(time.monotonic() - started, 2)
    rejects_out = out.with_name(out.stem + ".rejects.jsonl")
    stats_out = out.with_name(out.stem + ".stats.json")
    for source, target in ((job / "records.jsonl", out), (job / "rejects.jsonl", rejects_out)):
        with atomic_write(target, "wb") as handle:
            if source.exists():
                with source.open("rb") as data:
                    shutil.copyfileobj(data, handle)
    write_json(stats_out, stats)
    if temporary:
        shutil.rmtree(job, ignore_errors=True)
    return CrawlResult(out, rejects_out, stats_out, stats)


def _check_redis(url: str) -> None:
    """Fail in one line before starting Scrapy when the shared crawl's Redis cannot be reached."""
    import redis

    from crawlers.shared import connect

    try:
        connect(url).ping()
    except redis.RedisError as exc:
        raise CorpusmillError(f"{url}: Redis unreachable ({exc})") from None


def _why_nothing(job: Path) -> str:
    reasons = Counter(r["reason"] for r in read_json_lines(job / "rejects.jsonl") if r.get("requested"))
    if not reasons:
        return "crawl fetched 0 pages (nothing to crawl: check robots.txt, --allow/--deny and the start URL)"
    if set(reasons) == {"unreachable"}:
        return "unreachable (connection refused or host not found)"
    summary = ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
    return f"crawl wrote 0 records ({summary})"


def progress_line(path: Path, elapsed: float) -> Text:
    """The live line under a crawl, from the child's ``progress.json`` (with the whole crawl's, if shared)."""
    try:
        progress = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Text(f"crawling… {elapsed:.0f}s")
    pages = progress.get("pages", 0)
    rejected = sum(v for k, v in progress.items() if k.startswith("rejected/"))
    rate = pages / max(progress.get("elapsed", elapsed), 1e-6)
    line = (
        f"crawling: {pages} pages, {progress.get('records', 0)} records "
        f"({progress.get('faq_pairs', 0)} FAQ pairs), {rejected} rejected, {rate:.1f} pages/s"
    )
    if "crawl_done" in progress:
        line += (
            f" · shared crawl: {progress['crawl_done']}/{progress['crawl_claimed']} pages done, "
            f"{progress['crawl_queued']} queued, {progress['crawl_workers']} workers"
        )
    return Text(line)
