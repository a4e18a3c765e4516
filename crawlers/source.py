"""The ``crawl`` source of a build config: crawl once into a file, then read it like any input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from corpusmill.io import read_records, sha256_json
from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import Reader
from crawlers.options import CrawlOptions


class CrawlSourceParams(CrawlOptions):
    path: Path
    """Where the crawl's records are kept; an existing file is reused, not crawled again."""


@register("crawl")
class CrawlSource(Reader):
    """Crawls a site (Scrapy) into records when the build runs; a finished crawl is reused.

    A release is a snapshot: the crawl runs when ``path`` does not exist yet (resuming from
    ``<path>.job/`` after a crash); delete the file to crawl again for a new version."""

    Params: ClassVar[type[BaseModel]] = CrawlSourceParams

    def fingerprint(self) -> str:
        return sha256_json(self.params.model_dump(mode="json", exclude={"path"}))

    def read(self) -> Iterator[Record]:
        from crawlers.run import crawl

        params: CrawlSourceParams = self.params  # type: ignore[assignment]
        if not params.path.exists():
            options: dict[str, Any] = params.model_dump(exclude={"path"})
            options["dataset"] = options.get("dataset") or self.dataset
            crawl(CrawlOptions.model_validate(options), params.path, params.path.with_name(params.path.name + ".job"))
        yield from read_records(params.path)
