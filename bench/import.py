"""Importing CSV and JSONL into records JSONL, against the conversions a user would pick instead.

    .venv/bin/python bench/import.py --datatrove-python /tmp/dtvenv/bin/python [--sizes-mb 100] [--runs 3]

datatrove lives in its own virtual environment (see bench/clean.py):
``python3 -m venv /tmp/dtvenv && /tmp/dtvenv/bin/pip install datatrove orjson``.

For each size, writes a JSONL and a CSV file of banking-style rows (some with quoted newlines),
then, each in its own process (so peak RSS is its own) and alternating over the runs:

* corpusmill: ``corpusmill import FILE --out OUT --label label`` (the partial pipeline: reader,
  checkpoint, publish), called in-process after its imports;
* datatrove: ``CsvReader`` / ``JsonlReader`` → ``JsonlWriter`` (uncompressed), one task;
* HF datasets: ``load_dataset("csv" | "json")`` into a fresh cache → ``to_json``;
* pandas ``read_csv`` / ``read_json(lines=True)`` alone: parsing, with no output, a floor.

Time is measured inside each process from after its imports to the output file closed. Prints
rows/s per tool, our ratio to the faster of datatrove and datasets, and peak RSS. Not a test;
not run in CI.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
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
import json, resource, sys, tempfile, time
kind, fmt, path, repo = sys.argv[1:5]
out_path = path + f".{kind}.out"
if kind == "pandas":
    import pandas as pd
    started = time.perf_counter()
    frame = pd.read_csv(path) if fmt == "csv" else pd.read_json(path, lines=True)
    rows = len(frame)
elif kind == "datasets":
    import datasets
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        data = datasets.load_dataset("csv" if fmt == "csv" else "json", data_files=path, split="train", cache_dir=cache)
        data.to_json(out_path)
        rows = len(data)
elif kind == "datatrove":
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import CSVReader as CsvReader, JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    import os
    with tempfile.TemporaryDirectory() as work:
        folder, name = os.path.split(path)
        reader = (CsvReader if fmt == "csv" else JsonlReader)(folder, glob_pattern=name)
        started = time.perf_counter()
        LocalPipelineExecutor(
            pipeline=[reader, JsonlWriter(work + "/out", compression=None)],
            tasks=1, workers=1, logging_dir=work + "/logs",
        ).run()
        rows = sum(1 for name in os.listdir(work + "/out") for _ in open(os.path.join(work, "out", name), "rb"))
else:
    sys.path.insert(0, repo)
    from corpusmill.cli import app
    from corpusmill.registry import registered_steps
    registered_steps()  # imports every step package, as the peers' imports are done before timing
    started = time.perf_counter()
    app(["import", path, "--out", out_path, "--label", "label", "--format", fmt], standalone_mode=False)
    rows = sum(1 for _ in open(out_path, "rb"))
elapsed = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": elapsed, "rss_mb": peak_mb}))
"""

PEERS = ("datatrove", "datasets")


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


def run(kind: str, fmt: str, path: Path, python: str) -> dict:
    repo = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([python, "-c", CHILD, kind, fmt, str(path), repo], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{kind} on {path} failed:\n{out.stderr[-3000:]}")
    for leftover in path.parent.glob(f"{path.name}.{kind}.out*"):
        leftover.unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-import"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--datatrove-python", required=True, help="python of a venv with datatrove installed")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    pythons = {"corpusmill": sys.executable, "datasets": sys.executable, "pandas": sys.executable}
    pythons["datatrove"] = args.datatrove_python
    noise = NoiseMonitor()
    for size in args.sizes_mb:
        paths = generate(args.dir, size)
        for fmt, path in paths.items():
            results: dict[str, list[dict]] = {kind: [] for kind in pythons}
            for _ in range(args.runs):  # alternating, so a slow minute hurts every tool alike
                for kind, python in pythons.items():
                    results[kind].append(run(kind, fmt, path, python))
            rates = {kind: [r["rows"] / r["seconds"] for r in runs] for kind, runs in results.items()}
            rows = {kind: runs[0]["rows"] for kind, runs in results.items()}
            print(f"{size} MB {fmt}: rows out {rows}")
            for kind in pythons:
                peak = max(r["rss_mb"] for r in results[kind])
                print(f"  {kind:10s} {spread(rates[kind], ' rows/s')}, peak RSS {peak:.0f} MB")
            best = max(PEERS, key=lambda kind: statistics.median(rates[kind]))
            ratios = [a / b for a, b in zip(rates["corpusmill"], rates[best], strict=True)]
            print(f"  corpusmill / {best} (the faster peer): {spread(ratios, 'x')}")
    print(noise.verdict())


if __name__ == "__main__":
    main()
