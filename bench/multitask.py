"""What multi-task learning buys on Banking77: each task alone against both together.

    .venv/bin/python bench/multitask.py [--seeds 1,2,3] [--epochs 2]

A release of every question of 10 intents of Banking77's train split, each with a second label,
its coarse topic, derived from the intent by the rule in ``tests/test_multitask.py``
(``TOPIC_OF``: card_arrival, lost_or_stolen_card, declined_card_payment → cards, …), every
seventh question without one; then ``ablate_tasks`` with MiniLM: intent alone, topic alone and both on one encoder (the
topic's loss weighted 0.5), the same hyperparameters and budget, each seed on the same test
split. Prints the ablation table (``ablation.md``). Not a test; not in CI.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_multitask import TOPIC_OF, UNLABELLED_EVERY  # noqa: E402

from corpusmill.config import load_config  # noqa: E402
from corpusmill.executor import LocalExecutor  # noqa: E402
from training import ablate_tasks  # noqa: E402
from training.config import Hyperparameters, TaskSpec, TrainConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--epochs", type=float, default=2)
    args = parser.parse_args()
    shared = REPO.parent / "shared" / "data" / "banking77" / "train.csv"
    with tempfile.TemporaryDirectory() as work:
        directory = Path(work)
        with shared.open(newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle) if r["category"] in TOPIC_OF]
        with (directory / "questions.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "intent", "topic"])
            for number, row in enumerate(rows):
                topic = "" if number % UNLABELLED_EVERY == 0 else TOPIC_OF[row["category"]]
                writer.writerow([row["text"], row["category"], topic])
        (directory / "build.yaml").write_text(
            "seed: 1\n"
            "sources: [{type: csv, path: questions.csv, label: intent, meta: [topic]}]\n"
            "release: {name: banking-topics, version: '1'}\n"
        )
        release = LocalExecutor(load_config(directory / "build.yaml"), workers=2).build().release_dir
        config = TrainConfig(
            hyperparameters=Hyperparameters(learning_rate=3e-4, epochs=args.epochs, batch_size=32, max_length=40),
            tasks={"intent": TaskSpec(column="label"), "topic": TaskSpec(column="meta.topic", weight=0.5)},
        )
        seeds = [int(s) for s in args.seeds.split(",")]
        ablate_tasks(release, "multi-task", "minilm", directory / "ablate", config, seeds)
        print(f"{len(rows)} questions of {len(TOPIC_OF)} intents")
        print((directory / "ablate" / "ablation.md").read_text())


if __name__ == "__main__":
    main()
