"""Files a client uploads into ``<workspace>/inputs/``, where build configs name them.

An upload is streamed to a temp file beside its target, counted as it arrives (the cap holds
whatever ``Content-Length`` claims), and renamed into place only when whole: a killed upload
leaves no half file that a build could read.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from corpusmill.io import atomic_write

INPUTS = "inputs"
MAX_NAME = 100
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadTooLarge(Exception):
    pass


def sanitised_name(given: str) -> str:
    """The file name an upload is stored under: its last path component, every run of other
    characters than letters, digits, ``.``, ``_`` and ``-`` made one ``_``, no leading dot (no
    hidden files, no ``..``), at most 100 characters. Empty when nothing usable is left."""
    base = given.replace("\\", "/").rsplit("/", 1)[-1]
    name = UNSAFE.sub("_", base).lstrip("._-")
    if len(name) > MAX_NAME:
        stem, dot, suffix = name.rpartition(".")
        name = (stem[: MAX_NAME - len(suffix) - 1] + dot + suffix) if dot and len(suffix) < 12 else name[:MAX_NAME]
    return name


def detect_format(path: Path) -> str:
    """What a build source would read the file as: by its content's first bytes where they are
    telling (parquet, gzip, JSON), else by its extension."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    suffixes = [s.lower() for s in path.suffixes]
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"WARC/") or suffixes[-2:] == [".warc", ".gz"] or ".warc" in suffixes:
        return "warc"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        first = stripped.split(b"\n", 1)[0].rstrip()
        return "jsonl" if first.endswith(b"}") or ".jsonl" in suffixes else "json"
    by_suffix = {".csv": "csv", ".tsv": "tsv", ".txt": "text", ".html": "html", ".htm": "html", ".md": "text"}
    return by_suffix.get(suffixes[-1] if suffixes else "", "unknown")


def list_inputs(workspace: Path) -> list[dict[str, Any]]:
    directory = workspace / INPUTS
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.is_symlink():
            continue
        out.append({"name": path.name, "bytes": path.stat().st_size, "format": detect_format(path)})
    return out


async def save_upload(chunks: AsyncIterator[bytes], target: Path, max_bytes: int) -> int:
    """Stream ``chunks`` into ``target`` atomically; raises :class:`UploadTooLarge` (and keeps
    nothing) once more than ``max_bytes`` arrived."""
    received = 0
    with atomic_write(target, "wb") as handle:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_bytes:
                raise UploadTooLarge(f"upload over {max_bytes} bytes")
            handle.write(chunk)
    return received
