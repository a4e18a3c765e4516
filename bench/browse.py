"""How fast the web page's release browser answers on a big release (no peer: the numbers are
what a person waits for).

    .venv/bin/python bench/browse.py [--rows 200000]

Builds a release of Banking77's questions numbered to ``--rows`` distinct rows (exact dedup, the
default 80/10/10 stratified split), then a second version with 1,000 more questions and
``split.previous``; times a records page unfiltered, with a text search, with a label filter at
its last page, one record's page, and the comparison of the two versions; prints the process's
peak RSS. Not a test; not in CI.
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from corpusmill.config import load_config
from corpusmill.executor import LocalExecutor
from corpusmill.service import browse

REPO = Path(__file__).resolve().parents[1]
BANKING = REPO.parent / "shared" / "data" / "banking77" / "train.csv"


def timed(name: str, work: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    out = work()
    print(f"{name}: {time.perf_counter() - started:.2f} s", flush=True)
    return out


def build(root: Path, config: dict[str, Any]) -> Path:
    (root / "build.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return LocalExecutor(load_config(root / "build.yaml"), workers=2).build().release_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    rows = parser.parse_args().rows
    questions = list(csv.DictReader(BANKING.open(encoding="utf-8")))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with (root / "rows.csv").open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["text", "category"])
            for i in range(rows):
                row = questions[i % len(questions)]
                writer.writerow([f"{row['text']} #{i}", row["category"]])
        config: dict[str, Any] = {
            "seed": 1,
            "sources": [{"type": "csv", "path": "rows.csv", "label": "category"}],
            "clean": [{"step": "exact_dedup"}],
            "release": {"name": "big", "version": "1", "output_dir": "releases"},
        }
        first = timed("build 1", lambda: build(root, config))
        with (root / "rows.csv").open("a", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows([f"{q['text']} new #{i}", q["category"]] for i, q in enumerate(questions[:1000]))
        config["release"]["version"], config["split"] = "2", {"previous": "releases/big/1"}
        second = timed("build 2", lambda: build(root, config))
        page = timed("records, first page", lambda: browse.records_page(second, "train", browse.RecordFilter()))
        print(f"  {page.total} records in train")
        found = timed("records, text search", lambda: browse.records_page(second, "train", browse.RecordFilter("card")))
        print(f"  {found.matched} match")
        label = browse.RecordFilter(label="card_arrival")
        last = timed("records, label filter, last page", lambda: browse.records_page(second, "train", label, 10**9))
        print(f"  {last.matched} match")
        timed("one record's page", lambda: browse.record_story(second, page.rows[0]["id"]))
        diff = timed("compare 1 → 2", lambda: browse.compare_releases(first, second))
        counts = {kind: diff[kind]["count"] for kind in ("added", "split_changed", "changed")}
        print(f"  {counts}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    sys.exit(main())
