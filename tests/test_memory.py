"""Memory claims, as a subprocess's peak RSS at two input sizes (never absolute numbers, which
depend on the machine): importers stream."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from cli import cli_command

SOURCE = {"kind": "import", "uri": "generated", "dataset": "memory"}

PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "assert done.returncode == 0, done.stderr[-2000:]\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def peak_rss_kb(*command: str) -> int:
    """Peak RSS of ``command`` alone: measured by a fresh wrapper process whose only child it is.

    Never a child's own ``RUSAGE_SELF``: Linux carries the high-water RSS across ``fork`` +
    ``exec``, so a child of a large process (pytest with models loaded) reports its parent's."""
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *command], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.strip().splitlines()[-1])


def test_csv_import_memory_does_not_grow_with_the_file(shared_data, tmp_path):
    with (shared_data / "banking77" / "train.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    peaks = {}
    for copies in (1, 10):  # 10k and 100k rows
        source = tmp_path / f"rows-{copies}.csv"
        with source.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["text", "category"])
            for copy in range(copies):
                writer.writerows([f"{r['text']} ({copy})", r["category"]] for r in rows)
        out_path = tmp_path / f"records-{copies}.jsonl"
        peaks[copies] = peak_rss_kb(*cli_command("import", str(source), "--out", str(out_path), "--label", "category"))
        assert sum(1 for _ in out_path.open(encoding="utf-8")) == copies * len(rows)
    # Holding 100k records as objects would add hundreds of MB (several KB each); streaming adds ~0.
    assert peaks[10] < 1.2 * peaks[1], peaks


def test_the_memory_probe_sees_a_process_that_holds_its_input():
    """The probe itself bites: a command that keeps 100 MB shows it."""
    small = peak_rss_kb(sys.executable, "-c", "b = bytearray(1_000_000)")
    large = peak_rss_kb(sys.executable, "-c", "b = bytearray(100_000_000); b[::4096] = b'x' * len(b[::4096])")
    assert large - small > 90_000


NEAR_DEDUP_RUN = """
import sys
import numpy as np
import cleaning.dedup as dedup
from corpusmill.schema import Record

count, hold = int(sys.argv[1]), sys.argv[2] == "hold"
dedup.SIGNATURE_BATCH = 100  # one hashing batch is small beside the corpus, as in a real build
rng = np.random.default_rng(0)
vocabulary = np.array([f"{i:040d}" for i in range(5000)])
source = {"kind": "import", "uri": "generated", "dataset": "memory"}

def records():  # ~12 KB each, generated one at a time: the caller holds none of them
    for index in range(count):
        yield Record(id=f"r{index}", source=source, text=" ".join(vocabulary[rng.integers(0, 5000, 300)].tolist()))

held = []
kept = 0
for record, reason in dedup.NearDedup(workers=1).decide(records()):
    kept += reason is None
    if hold:
        held.append(record)
assert kept == count, kept
"""


def near_dedup_peak_kb(count: int, hold: bool = False) -> int:
    return peak_rss_kb(sys.executable, "-c", NEAR_DEDUP_RUN, str(count), "hold" if hold else "stream")


def test_near_dedup_keeps_signatures_not_records_in_memory():
    """2,000 → 8,000 documents of ~12 KB: holding the records would add ~70 MB; a signature is 512 bytes."""
    small, large = near_dedup_peak_kb(2000), near_dedup_peak_kb(8000)
    assert large < 1.1 * small, (small, large)
    # The same measurement sees a consumer that does hold them, so the bound above can fail.
    assert near_dedup_peak_kb(8000, hold=True) > 1.15 * small


def test_rejects_stream_to_disk_a_dedup_of_all_duplicates_peaks_like_one_of_all_unique(tmp_path):
    """60,000 records of ~500 characters through ``exact_dedup``: all distinct, or all one text.
    Holding the 59,999 rejects until the step ends would add well over 100 MB."""
    filler = " ".join(f"word{i}" for i in range(80))
    peaks = {}
    for kind in ("unique", "duplicates"):
        source = tmp_path / f"{kind}.jsonl"
        with source.open("w", encoding="utf-8") as out:
            for index in range(60_000):
                text = f"{filler} {index if kind == 'unique' else 0}"
                out.write(json.dumps({"id": f"r{index}", "text": text, "source": SOURCE}) + "\n")
        (tmp_path / "clean.yaml").write_text("clean:\n  - step: exact_dedup\n", encoding="utf-8")
        out_path = tmp_path / f"{kind}.out.jsonl"
        command = cli_command("clean", str(source), "--out", str(out_path), "--config", str(tmp_path / "clean.yaml"))
        peaks[kind] = peak_rss_kb(*command, "--workers", "1")
        rejects = tmp_path / f"{kind}.out.rejects" / "clean.exact_dedup.jsonl"
        written = sum(1 for _ in rejects.open(encoding="utf-8")) if rejects.exists() else 0
        assert written == (0 if kind == "unique" else 59_999)
    assert peaks["duplicates"] < 1.2 * peaks["unique"], peaks


SPLIT_RUN = """
import sys
import numpy as np
from corpusmill.schema import Record
from splitting import StratifiedSplitter

count, hold = int(sys.argv[1]), sys.argv[2] == "hold"
rng = np.random.default_rng(0)
vocabulary = np.array([f"{i:08d}" for i in range(5000)])
source = {"kind": "import", "uri": "generated", "dataset": "memory"}

def records():  # ~2 KB each, generated one at a time
    for index in range(count):
        text = " ".join(vocabulary[rng.integers(0, 5000, 220)].tolist())
        yield Record(id=f"r{index}", source=source, text=text, label=f"class{index % 20}")

splitter = StratifiedSplitter(seed=1, leakage={"check": False})
held = []
splits = {}
for record in splitter.run(records()):
    splits[record.split] = splits.get(record.split, 0) + 1
    if hold:
        held.append(record)
assert splits == {"train": count * 8 // 10, "validation": count // 10, "test": count // 10}, splits
"""


def split_peak_kb(count: int, hold: bool = False) -> int:
    return peak_rss_kb(sys.executable, "-c", SPLIT_RUN, str(count), "hold" if hold else "stream")


def test_a_split_holds_a_key_per_record_not_the_records():
    """20,000 → 80,000 records of ~2 KB: the splitter keeps (id, label, group) per record and
    spools the records; holding them would add hundreds of MB."""
    small, large = split_peak_kb(20_000), split_peak_kb(80_000)
    assert large < 1.3 * small, (small, large)
    assert split_peak_kb(80_000, hold=True) > 1.6 * small  # the probe sees records that are held
