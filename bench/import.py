"""Importer throughput and memory against pandas, on generated JSONL and CSV files.

    .venv/bin/python bench/import.py [--sizes-mb 100 1000] [--dir /tmp/bench-import]

For each size, writes a JSONL and a CSV file of banking-style rows (some with quoted newlines),
then in separate processes (so peak RSS is each one's own) imports it with corpusmill's importer
(records streamed to a JSONL file, as `corpusmill import` does) and loads it with
``pandas.read_csv`` / ``pandas.read_json(lines=True)``. Prints rows/s and peak RSS for each, and
how our RSS changes as the file grows. Not a test; not run in CI.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quiet import NoiseMonitor, spread

WORDS = [
    "card",
    "payment",
    "transfer",
    "refund",
    "account",
    "balance",
    "pending",
    "declined",
    "fee",
    "limit",
    "app",
    "top-up",
    "exchange",
    "rate",
    "cash",
    "withdrawal",
    "verify",
    "identity",
    "pin",
    "contactless",
    "statement",
]
LABELS = [f"intent_{i}" for i in range(77)]

CHILD = r"""
import json, resource, sys, time
kind, fmt, path = sys.argv[1:4]
started = time.perf_counter()
if kind == "pandas":
    import pandas as pd
    frame = pd.read_csv(path) if fmt == "csv" else pd.read_json(path, lines=True)
    rows = len(frame)
else:
    sys.path.insert(0, sys.argv[4])
    from crawlers.importers import ImportSource
    reader = ImportSource(dataset="bench", path=path, label="label", format=fmt)
    rows = 0
    with open(path + ".out.jsonl", "w", encoding="utf-8") as out:
        for record in reader.run():
            out.write(record.to_json() + "\n")
            rows += 1
elapsed = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": elapsed, "rss_mb": peak_mb}))
"""


def generate(directory: Path, size_mb: int) -> dict[str, Path]:
    rng = random.Random(size_mb)
    paths = {"jsonl": directory / f"rows-{size_mb}mb.jsonl", "csv": directory / f"rows-{size_mb}mb.csv"}
    if all(p.exists() for p in paths.values()):
        return paths
    target = size_mb * 1024 * 1024
    with paths["jsonl"].open("w", encoding="utf-8") as jl, paths["csv"].open("w", newline="", encoding="utf-8") as cf:
        writer = csv.writer(cf)
        writer.writerow(["text", "label"])
        while jl.tell() < target:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 25)))
            if rng.random() < 0.01:
                text = f"\n{text}\n"
            label = rng.choice(LABELS)
            jl.write(json.dumps({"text": text, "label": label}) + "\n")
            writer.writerow([text, label])
    return paths


def run(kind: str, fmt: str, path: Path) -> dict:
    repo = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, fmt, str(path), repo], capture_output=True, text=True, check=True
    )
    Path(str(path) + ".out.jsonl").unlink(missing_ok=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-import"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    ours_rss: dict[str, list[float]] = {"jsonl": [], "csv": []}
    noise = NoiseMonitor()
    for size in args.sizes_mb:
        paths = generate(args.dir, size)
        for fmt, path in paths.items():
            ours, peer = [], []
            for _ in range(args.runs):  # alternating, so a slow minute hurts both alike
                ours.append(run("corpusmill", fmt, path))
                peer.append(run("pandas", fmt, path))
            ours_rss[fmt].append(max(r["rss_mb"] for r in ours))
            ours_rates = [r["rows"] / r["seconds"] for r in ours]
            peer_rates = [r["rows"] / r["seconds"] for r in peer]
            print(
                f"{size:5d} MB {fmt:5s}  corpusmill {spread(ours_rates, ' rows/s')}, peak RSS "
                f"{ours_rss[fmt][-1]:.0f} MB | pandas {spread(peer_rates, ' rows/s')}, peak RSS "
                f"{max(r['rss_mb'] for r in peer):.0f} MB | ratio "
                f"{spread([a / b for a, b in zip(ours_rates, peer_rates, strict=True)], 'x')} | "
                f"rows {ours[0]['rows']} vs {peer[0]['rows']}"
            )
    if len(args.sizes_mb) > 1:
        for fmt, values in ours_rss.items():
            print(
                f"corpusmill {fmt} peak RSS growth from {args.sizes_mb[0]} MB to {args.sizes_mb[-1]} MB: "
                f"{values[-1] / values[0]:.2f}x"
            )
    print(noise.verdict())


if __name__ == "__main__":
    main()
