"""Web archives (WARC/WET, via warcio) and directories of .txt/.md/.html files.

HTML goes through the crawler's own extraction, so a page imported from a WARC file gives the
same records (text, FAQ pairs, title, language) as the same page crawled live.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from corpusmill.errors import InputError
from corpusmill.registry import register
from corpusmill.schema import Record, Source, content_id
from corpusmill.steps import Reader
from crawlers.encoding import guess_encoding
from crawlers.extract import extract_from_bytes, page_records

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")


class PathParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: Path


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset":
            return value.strip().strip('"')
    return None


@register("warc")
class WarcReader(Reader):
    """HTML ``response`` records (WARC) and ``conversion`` text records (WET)."""

    Params: ClassVar[type[BaseModel]] = PathParams

    def read(self) -> Iterator[Record]:
        from warcio.archiveiterator import ArchiveIterator
        from warcio.exceptions import ArchiveLoadFailed

        path: Path = self.params.path  # type: ignore[attr-defined]
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise InputError(str(path), f"cannot read: {exc.strerror}") from None
        produced = 0
        with handle:
            try:
                for number, entry in enumerate(ArchiveIterator(handle), start=1):
                    where = f"{path}:record {number}"
                    url = entry.rec_headers.get_header("WARC-Target-URI") or where
                    fetched_at = entry.rec_headers.get_header("WARC-Date")
                    payload = entry.content_stream().read()
                    if entry.raw_stream.limit > 0:  # the archive ended inside this record
                        if self.on_error == "raise":
                            raise InputError(str(path), f"truncated after record {number - 1}")
                        self.skip_bad_input(where, "truncated", url)
                        break
                    if entry.rec_type == "response" and entry.http_headers is not None:
                        content_type = entry.http_headers.get_header("Content-Type") or ""
                        if "html" not in content_type.lower():
                            self.stats.total += 1
                            self.drop(None, "non_html", where=where, raw=url)
                            continue
                        page = extract_from_bytes(payload, _charset(content_type), url)
                        records = page_records(page, url, self.dataset, "import", fetched_at)
                        if not records:
                            self.stats.total += 1
                            self.drop(None, "extraction_empty", where=where, raw=url)
                        for record in records:
                            produced += 1
                            yield record
                    elif entry.rec_type == "conversion":
                        text = payload.decode("utf-8", "replace").strip()
                        if not text:
                            self.stats.total += 1
                            self.drop(None, "extraction_empty", where=where, raw=url)
                            continue
                        produced += 1
                        yield Record(
                            id=content_id(self.dataset, text, None),
                            text=text,
                            group=url,
                            source=Source(kind="import", uri=url, dataset=self.dataset, fetched_at=fetched_at),
                        )
            except ArchiveLoadFailed as exc:
                raise InputError(str(path), f"not a WARC/WET file: {exc}") from None
        if produced == 0 and not self.stats.dropped:
            raise InputError(str(path), "empty input: no HTML responses or text conversions")


@register("dir")
class DirectoryReader(Reader):
    """Every .txt/.md/.html file under a directory, in sorted path order; one group per file."""

    Params: ClassVar[type[BaseModel]] = PathParams

    def read(self) -> Iterator[Record]:
        root: Path = self.params.path  # type: ignore[attr-defined]
        if not root.is_dir():
            raise InputError(str(root), "not a directory")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES + HTML_SUFFIXES)
        if not files:
            raise InputError(str(root), "empty input: no .txt, .md or .html files")
        for file in files:
            relative = file.relative_to(root).as_posix()
            body = file.read_bytes()
            if file.suffix.lower() in HTML_SUFFIXES:
                records = page_records(extract_from_bytes(body, None, relative), relative, self.dataset, "import")
                if not records:
                    self.stats.total += 1
                    self.drop(None, "extraction_empty", where=str(file), raw=relative)
                yield from records
                continue
            try:
                text = body.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = body.decode(guess_encoding(body) or "cp1252", "replace")
            if not text.strip():
                self.stats.total += 1
                self.drop(None, "empty_file", where=str(file), raw=relative)
                continue
            title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.strip()), "")
            yield Record(
                id=content_id(self.dataset, relative, None),
                text=text.strip(),
                group=relative,
                source=Source(kind="import", uri=relative, dataset=self.dataset),
                meta={"title": title},
            )
