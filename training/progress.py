"""A rich progress bar for transformers' Trainer: step, epoch, loss, eval metric and ETA on one
line, instead of a ``{'loss': …}`` dict printed every few steps."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import TrainerCallback


class RichProgress(TrainerCallback):
    """Shows one bar per training run; ``metric`` names the validation number to show."""

    def __init__(self, description: str, metric: str, console: Console | None = None) -> None:
        self.description, self.metric = description, metric
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task: Any = None
        self.fields = {"epoch": "0.0", "loss": "–", "eval": "–"}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps · epoch {task.fields[epoch]} · loss {task.fields[loss]} · {task.fields[eval]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=state.max_steps, **self.fields)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.fields["epoch"] = f"{state.epoch or 0:.1f}"
            self.progress.update(self.task, completed=state.global_step, **self.fields)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if self.progress is None or not logs:
            return
        if "loss" in logs:
            self.fields["loss"] = f"{logs['loss']:.3f}"
        key = f"eval_{self.metric}"
        if key in logs:
            self.fields["eval"] = f"validation {self.metric} {logs[key]:.3f}"
        elif "eval_loss" in logs:  # perplexity is exp(loss): Trainer logs only the loss
            value = math.exp(min(logs["eval_loss"], 50)) if self.metric == "perplexity" else logs["eval_loss"]
            name = "perplexity" if self.metric == "perplexity" else "loss"
            self.fields["eval"] = f"validation {name} {value:.3f}"
        self.progress.update(self.task, **self.fields)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
