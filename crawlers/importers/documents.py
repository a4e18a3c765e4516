"""Web archives (WARC/WET, via warcio) and directories of documents and dataset files.

HTML goes through the crawler's own extraction, so a page imported from a WARC file gives the
same records (text, FAQ pairs, title, language) as the same page crawled live.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from corpusmill.errors import InputError
from corpusmill.registry import get_step, register
from corpusmill.schema import Record, Source, content_id
from corpusmill.steps import Reader
from crawlers.encoding import guess_encoding
from crawlers.extract import extract_from_bytes, page_records
from crawlers.importers.detect import detect_format
from crawlers.importers.mapping import FieldMapping

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
                            self.skip_bad_input(where, "non_html", url)
                            continue
                        page = extract_from_bytes(payload, _charset(content_type), url)
                        records = page_records(page, url, self.dataset, "import", fetched_at)
                        if not records:
                            self.skip_bad_input(where, "extraction_empty", url)
                        for record in records:
                            produced += 1
                            yield record
                    elif entry.rec_type == "conversion":
                        text = payload.decode("utf-8", "replace").strip()
                        if not text:
                            self.skip_bad_input(where, "extraction_empty", url)
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


DATASET_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")
"""Files in a directory that are read as datasets, each by its detected format's reader."""


class DirectoryParams(FieldMapping):
    """The directory, and how to map the dataset files in it (as for one such file)."""


@register("dir")
class DirectoryReader(Reader):
    """Every file under a directory, in sorted path order: .txt/.md/.html as documents (one group
    per file), dataset files (CSV, JSON, JSONL, parquet) by their detected format with this
    source's column mapping; any other file is rejected as ``skipped_file``, never ignored, and a
    symbolic link to a file outside the directory as ``outside_directory``, never read."""

    Params: ClassVar[type[BaseModel]] = DirectoryParams

    def read(self) -> Iterator[Record]:
        root: Path = self.params.path  # type: ignore[attr-defined]
        if not root.is_dir():
            raise InputError(str(root), "not a directory")
        files = sorted(p for p in root.rglob("*") if p.is_file())
        inside = root.resolve()
        produced = 0
        for file in files:
            relative = file.relative_to(root).as_posix()
            suffix = file.suffix.lower()
            if not file.resolve().is_relative_to(inside):  # a link out of the directory is not its content
                self.skip_bad_input(str(file), "outside_directory", relative)
                continue
            if suffix in DATASET_SUFFIXES:
                records: Iterable[Record] = self._dataset_file(file, relative)
            elif suffix in TEXT_SUFFIXES + HTML_SUFFIXES:
                records = self._document(file, relative)
            else:
                self.skip_bad_input(str(file), "skipped_file", relative)
                continue
            for record in records:
                produced += 1
                yield record
        if not produced:
            skipped = self.stats.dropped.get("skipped_file", 0)
            raise InputError(
                str(root),
                f"nothing importable: {len(files)} files, {skipped} of no known format (documents: .txt, .md, "
                f".html; datasets: {', '.join(DATASET_SUFFIXES)})",
            )

    def _dataset_file(self, file: Path, relative: str) -> Iterator[Record]:
        """The file read by its own format's reader, which shares this one's rejects and counts."""
        reader_class = get_step("source", detect_format(file))
        known = reader_class.Params.model_fields
        mapping = self.params.model_dump(exclude_unset=True, exclude={"path"})
        options = {key: value for key, value in mapping.items() if key in known}
        reader: Reader = reader_class(dataset=self.dataset, on_error=self.on_error, uri=relative, path=file, **options)  # type: ignore[assignment]
        reader.label, reader.reject_sink = self.label, self.reject_sink
        reader.ensure_setup()
        yield from reader.read()
        self.stats.total += reader.stats.dropped.total()
        self.stats.dropped.update(reader.stats.dropped)
        self.rejects.extend(reader.rejects)

    def _document(self, file: Path, relative: str) -> Iterator[Record]:
        body = file.read_bytes()
        if file.suffix.lower() in HTML_SUFFIXES:
            records = page_records(extract_from_bytes(body, None, relative), relative, self.dataset, "import")
            if not records:
                self.skip_bad_input(str(file), "extraction_empty", relative)
            yield from records
            return
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = body.decode(guess_encoding(body) or "cp1252", "replace")
        if not text.strip():
            self.skip_bad_input(str(file), "empty_file", relative)
            return
        title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.strip()), "")
        yield Record(
            id=content_id(self.dataset, relative, None),
            text=text.strip(),
            group=relative,
            source=Source(kind="import", uri=relative, dataset=self.dataset),
            meta={"title": title},
        )
