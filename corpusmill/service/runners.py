"""What each job kind does, given its validated config; runs inside a worker process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from corpusmill.config import load_config


def run_build(config: dict[str, Any], workspace: Path, job_dir: Path) -> dict[str, Any]:
    """The config is written as a YAML file in the workspace, so relative paths resolve there and
    checkpoints (keyed by release name and version) survive a service restart. Its paths
    are confined to the workspace again here, as at submission (a symlink may have appeared)."""
    from corpusmill.console import print_summary
    from corpusmill.executor import LocalExecutor

    path = workspace / f"build-{job_dir.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    print(f"Building {config['release']['name']} {config['release']['version']} from {path.name}", flush=True)
    result = LocalExecutor(load_config(path, workspace=workspace), workers=1).build()
    print_summary(result)  # into the job's log: records per split, rejects by reason
    return {
        "release": f"{config['release']['name']}/{config['release']['version']}",
        "up_to_date": result.up_to_date,
        "resumed": [segment.name for segment in result.segments if segment.resumed],
    }


def run_crawl(config: dict[str, Any], workspace: Path, job_dir: Path) -> dict[str, Any]:
    from crawlers.options import CrawlOptions
    from crawlers.run import crawl

    options = CrawlOptions.model_validate({k: v for k, v in config.items() if k != "out"})
    out = workspace / "crawls" / config["out"]
    result = crawl(options, out, job_dir / "crawl-job")
    return {"out": str(out.relative_to(workspace)), "stats": result.stats}


def run_train(config: dict[str, Any], workspace: Path, job_dir: Path) -> dict[str, Any]:
    from training import train
    from training.config import TrainConfig

    release = workspace / "releases" / config["release"]
    report = train(
        release, config["task"], config["model"], job_dir / "model", TrainConfig.model_validate(config.get("train", {}))
    )
    return json.loads(json.dumps({"test": report["test"]["metrics"], "report": str(job_dir / "model" / "report.md")}))


RUNNERS = {"build": run_build, "crawl": run_crawl, "train": run_train}
