"""What the spider hands to the item pipelines: typed items, and the one way a page is rejected.

A page is rejected by raising :class:`PageRejected` (Scrapy's ``DropItem``) with a reason,
wherever in the pipelines that is decided; the output pipeline hears it through Scrapy's
``item_dropped`` signal and writes the reject, so every page still ends in exactly one outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scrapy.exceptions import DropItem


@dataclass
class PageItem:
    """A fetched HTML page; ``extracted`` is filled (and ``body`` let go) by extraction."""

    url: str
    requested_url: str
    canonical: str
    final_canonical: str
    depth: int
    status: int
    declared_encoding: str | None
    body: bytes | None
    fetched_at: str
    lease: str | None
    extracted: dict[str, Any] | None = None


@dataclass
class FailedPage:
    """A requested page that gave nothing to extract: an HTTP or network error, not HTML."""

    url: str
    canonical: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)
    lease: str | None = None


@dataclass
class SkippedLink:
    """A link that was never requested, and why (off-site, too deep, filtered …)."""

    url: str
    canonical: str
    reason: str


class PageRejected(DropItem):
    """Drops a page with its reject reason (logged at DEBUG: the rejects file is the record)."""

    def __init__(self, reason: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(reason, log_level="DEBUG")
        self.reason = reason
        self.detail = detail or {}
