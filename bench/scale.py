"""The clean stage over one corpus: local executor, and Ray with 1 and 2 workers, in one run.

    .venv/bin/python bench/scale.py [--docs 50000]

Per-record cleaning steps (html_to_text, fix_unicode, normalize, pii, gopher) over documents built
from ../shared/data; records/s for each and the 2-worker/1-worker ratio. Not a test; not in CI.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from quiet import NoiseMonitor, spread  # noqa: E402

STEPS = [{"step": "html_to_text"}, {"step": "fix_unicode"}, {"step": "normalize"}, {"step": "pii"}, {"step": "gopher"}]


def run(kind: str, workers: int, data: Path) -> float:
    import yaml

    from corpusmill.config import load_config, load_step_file
    from corpusmill.executor import LocalExecutor
    from corpusmill.ray_executor import RayExecutor

    with tempfile.TemporaryDirectory() as out:
        config_path = Path(out) / "build.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "release": {"name": "bench", "version": "1.0.0", "output_dir": "releases"},
                    "sources": [{"type": "jsonl", "path": str(data)}],
                    "clean": STEPS,
                }
            ),
            encoding="utf-8",
        )
        config, steps = load_config(config_path), load_step_file(config_path, "clean")
        if kind == "ray":
            import ray

            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                log_to_driver=False,
                _temp_dir=tempfile.mkdtemp(prefix="bench-ray-"),
            )
            executor: LocalExecutor = RayExecutor(config, workers)
        else:
            executor = LocalExecutor(config, workers)
        started = time.perf_counter()
        executor.run_steps("clean", steps, Path(out), data)
        elapsed = time.perf_counter() - started
        if kind == "ray":
            ray.shutdown()
    return elapsed


def main() -> None:
    from clean import build_corpus

    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "corpus.jsonl"
        build_corpus(data, args.docs)
        noise = NoiseMonitor()
        for _ in range(args.runs):  # alternating, so a slow minute hurts every side alike
            for name, executor, workers in (
                ("local, 2 workers", "local", 2),
                ("ray, 1 worker", "ray", 1),
                ("ray, 2 workers", "ray", 2),
            ):
                seconds.setdefault(name, []).append(run(executor, workers, data))
        verdict = noise.verdict()
    for name, values in seconds.items():
        print(f"{name:18s} {spread([args.docs / v for v in values], ' records/s')}")
    one, two = seconds["ray, 1 worker"], seconds["ray, 2 workers"]
    print(f"ray 2 workers / 1 worker: {spread([a / b for a, b in zip(one, two, strict=True)], 'x')}")
    print(verdict)


if __name__ == "__main__":
    main()
