"""The Ray executor on a local Ray instance gives the local executor's bytes."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

from test_build import banking_sources, data_files
from tiny_marian import backtranslate_params


def build(config: Path, executor: str) -> Path:
    """``corpusmill build`` with ``--executor``; the release directory."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "corpusmill", "build", str(config), "--workers", "2", "--executor", executor],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return config.parent / "releases" / "test" / "1.0.0"


def test_ray_build_is_byte_identical_to_the_local_build(shared_data, tmp_path, make_config):
    clean = [{"step": "normalize"}, {"step": "pii"}, {"step": "length", "min_words": 3}, {"step": "exact_dedup"}]
    augment = [{"step": "eda", "operation": "swap", "rate": 0.2}]
    releases = {}
    for executor in ("local", "ray"):
        directory = tmp_path / executor
        directory.mkdir()
        config = make_config(directory, sources=banking_sources(shared_data), clean=clean, augment=augment)
        releases[executor] = build(config, executor)
    assert data_files(releases["ray"]) == data_files(releases["local"])
    manifests = {k: json.loads((v / "manifest.json").read_text()) for k, v in releases.items()}
    assert manifests["ray"]["accounting"] == manifests["local"]["accounting"]
    assert manifests["ray"]["accounting"]["augmented_records"] > 0


def test_model_steps_run_in_ray_actors_with_the_same_bytes(tiny_marian, tmp_path, make_config):
    sentences = ["I am very happy.", "Where is the station?", "Tom is tired.", "I like dogs.", "It is cold today."]
    releases = {}
    for executor in ("local", "ray"):
        directory = tmp_path / executor
        directory.mkdir()
        (directory / "in.jsonl").write_text(
            "".join(json.dumps({"text": f"{s} ({i})", "label": str(i % 2)}) + "\n" for i, s in enumerate(sentences * 8))
        )
        own_cache = backtranslate_params(tiny_marian, directory / "cache")  # nothing shared between the runs
        config = make_config(
            directory, sources=[{"type": "jsonl", "path": "in.jsonl", "label": "label"}], augment=[own_cache]
        )
        releases[executor] = build(config, executor)
    assert data_files(releases["ray"]) == data_files(releases["local"])
    assert json.loads((releases["ray"] / "manifest.json").read_text())["accounting"]["augmented_records"] > 0


def test_the_ray_executor_hands_every_shard_to_ray(tmp_path, make_config, monkeypatch):
    """Ray really runs the steps: every shard of every per-record stage is submitted as a Ray task
    (a spy on ``ray.remote``), and the release still equals the local one."""
    import ray

    from corpusmill.config import load_config
    from corpusmill.executor import CHUNK_SIZE, LocalExecutor
    from corpusmill.ray_executor import RayExecutor

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    submitted: list[str] = []
    real_remote = ray.remote

    def spying_remote(*args, **kwargs):
        target = args[0] if len(args) == 1 and not kwargs else None
        if not inspect.isfunction(target):  # Ray's own uses, actor classes: untouched
            return real_remote(*args, **kwargs)
        remote = real_remote(target)

        class Counted:
            def remote(self, *args, **kwargs):
                submitted.append(target.__name__)
                return remote.remote(*args, **kwargs)

        return Counted()

    monkeypatch.setattr(ray, "remote", spying_remote)
    rows = [{"text": f"Question number {i} about my card and its pin", "label": str(i % 3)} for i in range(600)]
    releases = {}
    for name, executor in (("local", LocalExecutor), ("ray", RayExecutor)):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        config = make_config(
            directory,
            sources=[{"type": "jsonl", "path": "in.jsonl", "label": "label"}],
            clean=[{"step": "normalize"}],
            augment=[{"step": "eda", "operation": "swap", "rate": 0.2}],
        )
        releases[name] = executor(load_config(config), workers=2).build().release_dir
    shards = -(-len(rows) // CHUNK_SIZE)
    assert submitted == ["run_chunk"] * (2 * shards)  # the clean stage's shards, then augment's
    assert data_files(releases["ray"]) == data_files(releases["local"])
