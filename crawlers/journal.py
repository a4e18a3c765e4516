"""Crash-safe crawl state in a job directory.

Scrapy's own ``JOBDIR`` writes its queue's index only on a clean shutdown, so a crawl killed with
SIGKILL loses every pending request. The journal instead appends one line per scheduled URL
(``frontier.jsonl``) before the request leaves the spider, and one line per finished URL
(``done.jsonl``) after its records or reject are written. On restart, scheduled − done is the
work left, and nothing finished is written twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from crawlers.urls import canonical_url


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
        self._frontier = self.frontier_path.open("a", encoding="utf-8")
        self._done = self.done_path.open("a", encoding="utf-8")
        self._reconcile()

    def _reconcile(self) -> None:
        """Mark done what a kill caught between writing a page's output and its ``done`` line."""
        for record in read_json_lines(self.records_path):
            requested = record.get("meta", {}).get("requested_url")
            if requested and canonical_url(requested) not in self.done:
                self.finish(canonical_url(requested), "written")
        for reject in read_json_lines(self.rejects_path):
            if reject.get("requested") and canonical_url(reject["url"]) not in self.done:
                self.finish(canonical_url(reject["url"]), reject["reason"])

    @property
    def resuming(self) -> bool:
        return bool(self.scheduled)

    def pending(self) -> list[dict[str, Any]]:
        """Scheduled but never finished: fetched again on resume."""
        return [entry for canonical, entry in self.scheduled.items() if canonical not in self.done]

    def schedule(self, url: str, canonical: str, depth: int) -> None:
        entry = {"url": url, "canonical": canonical, "depth": depth}
        self.scheduled[canonical] = entry
        self._frontier.write(json.dumps(entry) + "\n")
        self._frontier.flush()

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
