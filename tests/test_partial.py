"""``corpusmill import | clean | split | augment`` are parts of a build run by the build's
executor: any importable input, rejects per step, resume after ``kill -9``, step specs."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from cli import run_cli

from corpusmill.errors import ConfigError
from corpusmill.partial import assignments

HELPER = Path(__file__).parent / "helpers" / "run_with_slow_step.py"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def banking_csv(shared_data: Path, directory: Path, rows: int) -> Path:
    """The first ``rows`` rows of Banking77's train CSV (some rows hold quoted newlines)."""
    with (shared_data / "banking77" / "train.csv").open(encoding="utf-8", newline="") as handle:
        head = list(itertools.islice(csv.reader(handle), rows + 1))
    path = directory / f"banking{rows}.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(head)
    return path


def test_split_reads_a_csv_and_previous_takes_an_earlier_split_output(shared_data, tmp_path):
    first, grown = banking_csv(shared_data, tmp_path, 1500), banking_csv(shared_data, tmp_path, 3000)
    read = ["--read", "label=category", "--read", "dataset=banking77"]  # one dataset name: one id per text
    done = run_cli("split", str(first), "--out", str(tmp_path / "v1"), *read, "--seed", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "v1" / "manifest.json").read_text())
    assert manifest["format"] == "corpusmill-split/1"
    assert {name: info["records"] for name, info in manifest["splits"].items()} == {
        "train": 1200,
        "validation": 150,
        "test": 150,
    }
    assert manifest["accounting"]["balanced"] and manifest["accounting"]["input_records"] == 1500
    old = {r["id"]: name for name in manifest["splits"] for r in lines(tmp_path / "v1" / f"{name}.jsonl")}
    assert all(r["label"] for r in lines(tmp_path / "v1" / "train.jsonl"))  # the label column was mapped
    assert not (tmp_path / ".v1.work").exists()  # the work directory goes once the output is published
    again = run_cli("split", str(first), "--out", str(tmp_path / "v1"), *read)
    assert again.returncode == 1 and "v1: already exists; choose a new output directory" in again.stderr
    assert not (tmp_path / ".v1.work").exists()  # and leaves nothing behind
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    early = run_cli("split", str(broken), "--out", str(tmp_path / "v1"))
    assert early.returncode == 1 and "already exists" in early.stderr  # refused before the input is read

    done = run_cli(
        *("split", str(grown), "--out", str(tmp_path / "v2"), *read, "--seed", "9"),
        *("--previous", str(tmp_path / "v1")),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    new = {r["id"]: name for name in ("train", "validation", "test") for r in lines(tmp_path / "v2" / f"{name}.jsonl")}
    assert len(new) == 3000
    assert all(new[i] == split for i, split in old.items())  # another seed, yet no old record moved
    report = json.loads((tmp_path / "v2" / "split_report.json").read_text())
    assert report["previous"] == {"kept": 1500, "moved": 0}
    totals = Counter(new.values())
    assert all(abs(totals[s] - 3000 * r) <= 3 for s, r in {"train": 0.8, "validation": 0.1, "test": 0.1}.items())


def test_clean_reads_a_csv_and_writes_rejects_per_step(shared_data, tmp_path):
    source = banking_csv(shared_data, tmp_path, 600)
    config = tmp_path / "clean.yaml"
    config.write_text("clean:\n  - step: length\n    min_words: 9\n  - step: exact_dedup\n")
    out = tmp_path / "clean.jsonl"
    done = run_cli("clean", str(source), "--out", str(out), "--config", str(config), "--read", "label=category")
    assert done.returncode == 0, done.stderr[-2000:]
    kept = lines(out)
    rejected = {p.name: lines(p) for p in (tmp_path / "clean.rejects").iterdir()}
    assert set(rejected) == {"clean.length.jsonl"}  # no exact duplicate in these rows: no empty file
    assert all(len(r["record"]["text"].split()) < 9 for r in rejected["clean.length.jsonl"])
    assert all(len(r["text"].split()) >= 9 and r["label"] for r in kept)
    assert len(kept) + len(rejected["clean.length.jsonl"]) == 600


def run_with_slow_step(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HELPER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_a_clean_killed_with_sigkill_resumes_from_its_checkpoints(shared_data, tmp_path):
    source = shared_data / "banking77" / "train.csv"
    config = tmp_path / "clean.yaml"
    config.write_text(
        "clean:\n  - step: normalize\n  - step: exact_dedup\n"
        "  - step: slow_passthrough\n    seconds_per_record: 0.0005\n  - step: length\n    min_words: 3\n"
    )
    args = ["--config", str(config), "--read", "label=category", "--workers", "2"]
    whole = run_with_slow_step("clean", str(source), "--out", str(tmp_path / "whole.jsonl"), *args)
    output = whole.communicate(timeout=300)[0]
    assert whole.returncode == 0, output

    out = tmp_path / "killed.jsonl"
    process = run_with_slow_step("clean", str(source), "--out", str(out), *args)
    partial = tmp_path / ".killed.jsonl.work" / ".02.clean.length.partial" / "records.jsonl"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 0):
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the clean never reached its last segment"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert not out.exists()  # nothing published by the killed run

    rerun = run_with_slow_step("clean", str(source), "--out", str(out), *args)
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    assert "Resumed from checkpoints: 00.read.train, 01.clean.exact_dedup" in output
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert not (tmp_path / ".killed.jsonl.work").exists()


def test_augment_takes_a_step_from_a_yaml_file_or_by_name_with_set(shared_data, tmp_path):
    source = banking_csv(shared_data, tmp_path, 40)
    spec = tmp_path / "eda.yaml"
    spec.write_text("step: eda\noperation: swap\nn: 2\nrate: 0.3\n")
    done = run_cli("augment", str(source), "--out", str(tmp_path / "a.jsonl"), "--step", str(spec), "--seed", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    records = lines(tmp_path / "a.jsonl")
    variants = [r for r in records if r["parent_id"]]
    assert len(records) - len(variants) == 40 and 40 < len(variants) <= 80
    assert {r["augmentation"]["method"] for r in variants} == {"swap"}
    by_name = run_cli(
        *("augment", str(source), "--out", str(tmp_path / "b.jsonl"), "--step", "eda", "--seed", "3"),
        *("--set", "operation=swap", "--set", "n=2", "--set", "rate=0.3"),
    )
    assert by_name.returncode == 0, by_name.stderr[-2000:]
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()  # the same step, told two ways

    bad = run_cli("augment", str(source), "--out", str(tmp_path / "c.jsonl"), "--step", "eda", "--set", "rate=lots")
    assert bad.returncode == 2 and "--step: augment[0].rate: Input should be a valid number" in bad.stderr
    unknown = run_cli("augment", str(source), "--out", str(tmp_path / "c.jsonl"), "--step", "eda", "--set", "nn=2")
    assert unknown.returncode == 2 and "augment[0].nn: unknown key (allowed: splits, force, n," in unknown.stderr
    assert not (tmp_path / "c.jsonl").exists() and not (tmp_path / ".c.jsonl.work").exists()


def test_assignments_read_yaml_values_and_nest_dotted_keys():
    assert assignments(["n=2", "quality.similarity=none", "quality.min=0.5", "pivots=[{language: de}]"], "--set") == {
        "n": 2,
        "quality": {"similarity": "none", "min": 0.5},
        "pivots": [{"language": "de"}],
    }
    assert assignments(["text=body", "empty="], "--read") == {"text": "body", "empty": ""}
    with pytest.raises(ConfigError, match="--set: n2: expected KEY=VALUE"):
        assignments(["n2"], "--set")
    with pytest.raises(ConfigError, match=r"--set: a\.b: a is set to a value and given keys"):
        assignments(["a=1", "a.b=2"], "--set")
