"""A build killed with SIGKILL mid-stage resumes and ends byte-identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_build import banking_sources, data_files

HELPER = Path(__file__).parent / "helpers" / "run_with_slow_step.py"
CLEAN = [
    {"step": "normalize"},
    {"step": "slow_passthrough", "seconds_per_record": 0.0005},
    {"step": "length", "min_words": 3},
    {"step": "exact_dedup"},
]


def run_build(config: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HELPER), "build", str(config), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def test_sigkill_mid_stage_then_rerun_gives_the_same_release(shared_data, tmp_path, make_config):
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    configs = {}
    for directory in (killed_dir, clean_dir):
        directory.mkdir()
        configs[directory] = make_config(directory, sources=banking_sources(shared_data), clean=CLEAN)

    uninterrupted = run_build(configs[clean_dir])
    output = uninterrupted.communicate(timeout=300)[0]
    assert uninterrupted.returncode == 0, output

    process = run_build(configs[killed_dir])
    partial = killed_dir / ".corpusmill" / "work" / "test-1.0.0" / ".01.clean.exact_dedup.partial" / "records.jsonl"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 0):
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the build never reached the clean steps"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the build and its worker processes, no cleanup
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    release = killed_dir / "releases" / "test" / "1.0.0"
    assert not release.exists()
    assert (killed_dir / ".corpusmill" / "work" / "test-1.0.0" / "00.read.banking77" / "_DONE.json").exists()

    rerun = run_build(configs[killed_dir])
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    assert "Resumed from checkpoints: 00.read.banking77\n" in output
    manifest = json.loads((release / "manifest.json").read_text())
    assert [segment["resumed"] for segment in manifest["segments"]] == [True, False, False]
    assert data_files(release) == data_files(clean_dir / "releases" / "test" / "1.0.0")
    assert manifest["accounting"]["balanced"]
