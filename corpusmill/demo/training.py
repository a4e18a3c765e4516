"""The demo's last part: short fine-tunes on its release, an intent classifier (MiniLM) and a chat
model (SmolLM2-135M-Instruct with LoRA), each compared with its base model on the test split.

A rerun reuses a run whose report is already there, so ``corpusmill demo`` reruns in seconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console


def train_demo_models(release_dir: Path, out_dir: Path, skip_classifier: bool, console: Console) -> Iterator[str]:
    """Train (or reuse) both demo models; yield the lines that tell what each bought."""
    from training import train
    from training.config import Hyperparameters, TrainConfig

    if not skip_classifier:
        run_dir = out_dir / "model"
        report = _earlier_run(run_dir, "Fine-tuning MiniLM on the demo release (2 epochs, CPU)…", console) or train(
            release_dir,
            "classification",
            "minilm",
            run_dir,
            TrainConfig(
                hyperparameters=Hyperparameters(learning_rate=4e-4, epochs=2, batch_size=16, max_length=40, seed=13)
            ),
        )
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in report["test"]["metrics"].items() if k != "loss")
        yield f"Intent classifier on test: {metrics}"
        yield f"Report: {run_dir / 'report.md'}"
    chat_dir = out_dir / "chat-model"
    report = _earlier_run(
        chat_dir, "Fine-tuning SmolLM2-135M-Instruct with LoRA on the FAQ chats (1 epoch, CPU)…", console
    ) or train(
        release_dir,
        "causal-lm",
        "smollm2",
        chat_dir,
        TrainConfig(
            method="lora",
            text_field="messages",
            max_new_tokens=64,
            hyperparameters=Hyperparameters(
                learning_rate=5e-4, epochs=1, batch_size=4, max_length=192, warmup_ratio=0.0, seed=13
            ),
        ),
    )
    base, tuned = report["base"]["metrics"], report["test"]["metrics"]
    yield (
        f"Chat model on test: perplexity {base['perplexity']:.2f} (base) → {tuned['perplexity']:.2f} (tuned), "
        f"chrF {base['chrf']:.1f} → {tuned['chrf']:.1f}, MiniLM similarity {base['minilm_cosine']:.3f} → "
        f"{tuned['minilm_cosine']:.3f}"
    )
    example = {key: _one_line(text) for key, text in report["examples"][0].items()}
    yield f"  Q: {example['prompt']}\n  base:  {example['base']}\n  tuned: {example['tuned']}"
    yield f"Report: {chat_dir / 'report.md'}\nTalk to it: corpusmill chat {chat_dir}"


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _earlier_run(run_dir: Path, announce: str, console: Console) -> dict[str, Any] | None:
    """An earlier demo's report from ``run_dir``, or None after announcing the training that is
    about to start."""
    if (run_dir / "report.json").exists():
        return json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    console.print(announce, highlight=False)
    return None
