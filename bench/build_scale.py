"""A whole build at two sizes: peak RSS and wall time as the corpus grows.

    .venv/bin/python bench/build_scale.py [--rows 1000000,3000000] [--workers 2]

Banking77's questions, numbered so that every row is distinct, as one CSV (``text``, ``category``);
the build imports it, normalises, filters by length, drops exact duplicates, makes a stratified
80/10/10 split (with its leakage check) and writes the release. Each size runs once in a fresh
``/usr/bin/time -v``; the script prints peak RSS and seconds per size and their ratios between
consecutive sizes (a build that streams grows its peak far slower than its input). Not a test;
not in CI.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from quiet import NoiseMonitor  # noqa: E402

CONFIG = """\
seed: 1
sources:
  - type: csv
    path: rows.csv
    label: category
clean:
  - step: normalize
  - step: length
    min_words: 2
  - step: exact_dedup
split:
  method: stratified
release:
  name: scale
  version: "1"
"""


def write_rows(path: Path, rows: int) -> None:
    with (REPO.parent / "shared" / "data" / "banking77" / "train.csv").open(newline="", encoding="utf-8") as handle:
        questions = [(r["text"], r["category"]) for r in csv.DictReader(handle)]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "category"])
        for index in range(rows):
            text, category = questions[index % len(questions)]
            writer.writerow([f"{text} (case {index})", category])


def measure(directory: Path, workers: int) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one ``corpusmill build`` and its worker processes' largest."""
    done = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "corpusmill", "build", "build.yaml", "--workers", str(workers)],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert seconds and peak, done.stderr[-2000:]
    hours, minutes, secs = seconds.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(secs), int(peak.group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="1000000,3000000")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    noise = NoiseMonitor()
    results = []
    for rows in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            write_rows(directory / "rows.csv", rows)
            (directory / "build.yaml").write_text(CONFIG, encoding="utf-8")
            seconds, peak = measure(directory, args.workers)
        results.append((rows, seconds, peak))
        print(f"{rows:>10,} rows: {seconds:7.1f} s, peak RSS {peak:7.0f} MB", flush=True)
    for (rows_a, seconds_a, peak_a), (rows_b, seconds_b, peak_b) in pairwise(results):
        print(
            f"{rows_a:,} -> {rows_b:,} rows ({rows_b / rows_a:.1f}x): time {seconds_b / seconds_a:.2f}x, "
            f"peak RSS {peak_b / peak_a:.2f}x"
        )
    print(noise.verdict())


if __name__ == "__main__":
    main()
