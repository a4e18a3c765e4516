"""How fast could a CSV → records-JSONL import be at all? A columnar floor against HF ``datasets``.

    .venv/bin/python bench/import_floor.py /tmp/bench-import/rows-100mb.csv [--runs 3]

Issue 18 asks ``corpusmill import`` for ≥ 1.0x the faster peer (HF ``datasets``'
``load_dataset("csv")`` → ``to_json``). This measures the best a vectorised import could do while
writing corpusmill's record lines, byte for byte: pyarrow's multithreaded CSV reader, the content
ids (SHA-256 of dataset and text, the one per-row Python step left) with a repeated text's
``-2``, ``-3`` suffix (pandas' ``cumcount``), JSON escaping with Arrow's
``replace_substring`` kernels, the lines assembled by ``binary_join_element_wise`` and written as
the joined array's one buffer — no record model, no executor, no duplicate-id check, no reject
accounting. It first checks that its lines equal what ``corpusmill import`` writes for the file
(the file must hold no control character but newline, return and tab, which it escapes), then
alternates it with ``datasets`` over the runs and prints each phase, the medians, the ratio and
how busy the rest of the machine was meanwhile.
Not a test; not in CI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from quiet import NoiseMonitor  # noqa: E402

ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def escaped(array: pa.Array) -> pa.Array:
    for old, new in ESCAPES:
        array = pc.replace_substring(array, old, new)
    return array


def floor_import(path: Path, out: Path) -> dict[str, float]:
    """The columnar conversion, timed by phase; returns seconds per phase."""
    dataset, uri = path.stem, str(path)
    times: dict[str, float] = {}
    started = time.perf_counter()
    table = pcsv.read_csv(
        path,
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={"text": pa.string(), "label": pa.string()}, strings_can_be_null=False
        ),
    )
    times["parse"] = time.perf_counter() - started
    mark = time.perf_counter()
    text = table.column("text").combine_chunks()
    prefix = f"{dataset}\0".encode()
    ids = [f"{dataset}-{hashlib.sha256(prefix + t.encode()).hexdigest()[:16]}" for t in text.to_pylist()]
    times["ids"] = time.perf_counter() - mark
    mark = time.perf_counter()
    seen_before = pd.Series(ids).groupby(ids, sort=False).cumcount().to_numpy()  # a repeated text's -2, -3 …
    for index in np.flatnonzero(seen_before):
        ids[index] = f"{ids[index]}-{seen_before[index] + 1}"
    ids_array = pa.array(ids)
    times["repeats"] = time.perf_counter() - mark
    mark = time.perf_counter()
    text_json, label_json = escaped(text), escaped(table.column("label").combine_chunks())
    times["escape"] = time.perf_counter() - mark
    mark = time.perf_counter()
    source = json.dumps(
        {"dataset": dataset, "fetched_at": None, "kind": "import", "uri": uri},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    lines = pc.binary_join_element_wise(
        '{"augmentation":null,"group":null,"id":"',
        ids_array,
        '","label":"',
        label_json,
        f'","messages":null,"meta":{{}},"parent_id":null,"source":{source},"split":null,"text":"',
        text_json,
        '"}\n',
        "",
    )
    times["assemble"] = time.perf_counter() - mark
    mark = time.perf_counter()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    with out.open("wb") as handle:
        handle.write(memoryview(lines.buffers()[2])[offsets[0] : offsets[len(lines)]])
    times["write"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - started
    return times


def datasets_import(path: Path, out: Path) -> float:
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        data = datasets.load_dataset("csv", data_files=str(path), split="train", cache_dir=cache)
        data.to_json(str(out))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        ours, floor = Path(work) / "corpusmill.jsonl", Path(work) / "floor.jsonl"
        subprocess.run(
            [sys.executable, "-m", "corpusmill", "import", str(args.csv), "--out", str(ours), "--label", "label"],
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        floor_import(args.csv, floor)
        if floor.read_bytes() != ours.read_bytes():
            raise SystemExit("the floor's lines differ from corpusmill import's: not comparable")
        rows = sum(1 for _ in ours.open("rb"))
        noise = NoiseMonitor()
        phases: list[dict[str, float]] = []
        peer: list[float] = []
        for _ in range(args.runs):
            phases.append(floor_import(args.csv, floor))
            peer.append(datasets_import(args.csv, Path(work) / "datasets.jsonl"))
    print(f"{rows:,} rows; the floor's lines are byte-identical to corpusmill import's")
    for phase in phases[0]:
        values = [p[phase] for p in phases]
        print(f"  floor {phase:9s} {statistics.median(values):6.2f} s ({min(values):.2f}–{max(values):.2f})")
    total = statistics.median(p["total"] for p in phases)
    print(f"  datasets         {statistics.median(peer):6.2f} s ({min(peer):.2f}–{max(peer):.2f})")
    print(f"floor / datasets: {statistics.median(peer) / total:.2f}x (above 1: the floor is faster)")
    print(noise.verdict())


if __name__ == "__main__":
    main()
