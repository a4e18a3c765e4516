"""Crash-safe crawl state in a job directory.

Scrapy's own ``JOBDIR`` writes its queue's index only on a clean shutdown, so a crawl killed with
SIGKILL loses every pending request. The journal instead appends one line per scheduled URL
(``frontier.jsonl``) before the request leaves the spider, and one line per finished URL
(``done.jsonl``) after its records or reject are written. On restart, scheduled − done is the
work left, and nothing finished is written twice.

:class:`CrawlState` is what the spider and the output pipeline need from crawl state; the journal
is its one-process implementation, :class:`crawlers.shared.SharedCrawlState` its Redis one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from crawlers.urls import canonical_url


class CrawlState(Protocol):
    """Frontier, outcomes and outputs of one crawl, as the spider and output pipeline use them."""

    job_dir: Path

    @property
    def resuming(self) -> bool: ...

    def pending(self) -> list[dict[str, Any]]:
        """Pages scheduled by an earlier run and never finished, to request again at start."""
        ...

    def seen(self, canonical: str) -> bool: ...

    def claim(self, url: str, canonical: str, depth: int, max_pages: int | None) -> bool:
        """Schedule a page; False when the page limit is reached."""
        ...

    def was_written(self, canonical: str) -> bool: ...

    def complete(
        self, canonical: str, outcome: str, lines: list[str], *, rejected: bool, aliases: set[str], lease: str | None
    ) -> bool:
        """Record one page's outcome and its output lines once; False if it already had one."""
        ...

    def report_skip(self, canonical: str, line: str) -> None:
        """Record a link that was never requested (off-site, too deep …), once per URL."""
        ...

    def release(self, lease: str | None) -> None:
        """Give back a claim on a request that produced no page outcome (robots.txt, sitemaps)."""
        ...

    def close(self) -> None: ...


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line; a torn last line from a kill is dropped."""
    if not path.exists():
        return []
    entries = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            try:
                entries.append(json.loads(line))
            except ValueError:
                break
    return entries


def truncate_torn_tail(path: Path) -> None:
    """Cut a file back to its last complete line (a kill can stop an append halfway)."""
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)


class CrawlJournal:
    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        job_dir.mkdir(parents=True, exist_ok=True)
        self.frontier_path = job_dir / "frontier.jsonl"
        self.done_path = job_dir / "done.jsonl"
        self.records_path = job_dir / "records.jsonl"
        self.rejects_path = job_dir / "rejects.jsonl"
        for path in (self.frontier_path, self.done_path, self.records_path, self.rejects_path):
            truncate_torn_tail(path)
        self.scheduled: dict[str, dict[str, Any]] = {e["canonical"]: e for e in read_json_lines(self.frontier_path)}
        self.done: dict[str, str] = {e["canonical"]: e["outcome"] for e in read_json_lines(self.done_path)}
        self.written: set[str] = set()
        """URLs whose page's records are in ``records.jsonl`` (read back by ``_reconcile``)."""
        self.reported_skips: set[str] = set()
        """Links already listed as not followed, by this run or an earlier one: listed once."""
        self._frontier = self.frontier_path.open("a", encoding="utf-8")
        self._done = self.done_path.open("a", encoding="utf-8")
        self._reconcile()

    def _reconcile(self) -> None:
        """Mark done what a kill caught between writing a page's output and its ``done`` line, and
        count as written both the URL each record was requested at and the one it was fetched from
        (a redirect's target), so a later redirect to either is not written twice."""
        for record in read_json_lines(self.records_path):
            requested = record.get("meta", {}).get("requested_url")
            if not requested:
                continue
            canonical = canonical_url(requested)
            self.written.add(canonical)
            if uri := record.get("source", {}).get("uri"):
                self.written.add(canonical_url(uri))
            if canonical not in self.done:
                self.finish(canonical, "written")
        for reject in read_json_lines(self.rejects_path):
            if not reject.get("requested"):
                self.reported_skips.add(canonical_url(reject["url"]))
            elif canonical_url(reject["url"]) not in self.done:
                self.finish(canonical_url(reject["url"]), reject["reason"])

    @property
    def resuming(self) -> bool:
        return bool(self.scheduled)

    def pending(self) -> list[dict[str, Any]]:
        """Scheduled but never finished: fetched again on resume."""
        return [entry for canonical, entry in self.scheduled.items() if canonical not in self.done]

    def seen(self, canonical: str) -> bool:
        return canonical in self.scheduled

    def claim(self, url: str, canonical: str, depth: int, max_pages: int | None) -> bool:
        if max_pages is not None and len(self.scheduled) >= max_pages:
            return False
        entry = {"url": url, "canonical": canonical, "depth": depth}
        self.scheduled[canonical] = entry
        self._frontier.write(json.dumps(entry) + "\n")
        self._frontier.flush()
        return True

    def was_written(self, canonical: str) -> bool:
        return canonical in self.written

    def complete(
        self, canonical: str, outcome: str, lines: list[str], *, rejected: bool, aliases: set[str], lease: str | None
    ) -> bool:
        """Output lines first, then the ``done`` line: a kill in between is mended by ``_reconcile``."""
        if canonical in self.done:
            return False
        self.append(self.rejects_path if rejected else self.records_path, lines)
        if not rejected:
            self.written.update(aliases)
        self.finish(canonical, outcome)
        return True

    def report_skip(self, canonical: str, line: str) -> None:
        if canonical not in self.reported_skips:
            self.reported_skips.add(canonical)
            self.append(self.rejects_path, [line])

    def release(self, lease: str | None) -> None:
        """Nothing is leased in a one-process crawl."""

    def finish(self, canonical: str, outcome: str) -> None:
        self.done[canonical] = outcome
        self._done.write(json.dumps({"canonical": canonical, "outcome": outcome}) + "\n")
        self._done.flush()

    def append(self, path: Path, lines: list[str]) -> None:
        """One write of whole lines, so a kill never leaves half a page's records."""
        if not lines:
            return
        data = "".join(line + "\n" for line in lines).encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._frontier.close()
        self._done.close()
