"""Transfer learning: a run that starts from an earlier run's weights (``--init-from RUN_DIR``).

The earlier run is read from its ``report.json`` (what it was: task, base model, release and
labels) and its ``model/`` directory. Its chain is recorded in the new report — the run, its
base model, the release it trained on with that release's manifest sha256, and the sha256 of
its report — so a chat model fine-tuned after a domain-text run says where its weights came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from corpusmill.errors import InputError
from corpusmill.io import sha256_file

ENCODER_TASKS = ("classification", "multi-task")
"""Tasks whose runs share an encoder's weights, so one can start from another's."""


class EarlierRun:
    """A finished training run to start from."""

    def __init__(self, run_dir: Path, task: str, model: str | None) -> None:
        report_path = run_dir / "report.json"
        try:
            self.report = json.loads(report_path.read_text(encoding="utf-8"))
            self.task, self.base_model = self.report["task"], self.report["base_model"]
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(str(run_dir), "not a finished corpusmill training run (no readable report.json)") from None
        self.run_dir, self.model_dir = run_dir, run_dir / "model"
        if not self.model_dir.is_dir():
            raise InputError(str(run_dir), "the run has no model/ directory")
        if (task in ENCODER_TASKS) != (self.task in ENCODER_TASKS):
            raise InputError(str(run_dir), f"a {self.task} run cannot start a {task} run")
        if model is not None and model != self.base_model:
            raise InputError(
                str(run_dir), f"the run was trained from {self.base_model!r}; --model {model!r} names another model"
            )
        self.report_sha256 = sha256_file(report_path)

    @property
    def labels(self) -> list[str]:
        return list(self.report.get("labels") or [])

    def weights(self, base_path: str, merged_dir: Path) -> str:
        """A directory of full weights to start from: the run's model, or its LoRA adapter
        folded into the base model (written once into ``merged_dir``)."""
        if not (self.model_dir / "adapter_config.json").is_file():
            return str(self.model_dir)
        if not (merged_dir / "config.json").is_file():
            import transformers
            from peft import PeftModel

            config = json.loads((self.model_dir / "adapter_config.json").read_text(encoding="utf-8"))
            if config.get("task_type") == "CAUSAL_LM":
                base = transformers.AutoModelForCausalLM.from_pretrained(base_path)
            else:  # SEQ_CLS: the adapter keeps its own classifier head
                base = transformers.AutoModelForSequenceClassification.from_pretrained(
                    base_path, num_labels=len(self.labels)
                )
            merged = PeftModel.from_pretrained(base, str(self.model_dir)).merge_and_unload()
            merged.save_pretrained(str(merged_dir))
        return str(merged_dir)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run_dir),
            "task": self.task,
            "base_model": self.base_model,
            "release": self.report.get("release"),
            "report_sha256": self.report_sha256,
            "init_from": self.report.get("init_from"),  # the chain goes on: base → domain text → chat
        }
