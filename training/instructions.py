"""Generative multi-task learning: a causal LM learns classification tasks as instruction turns
beside the chats it learns to answer.

Each task (``label`` or ``meta.<key>`` of the release's text records, as for the encoder's
multi-task runs) becomes a user turn asking for the record's class, rendered from the task's
``prompt`` template, and an assistant turn answering with the class name (a multi-label record:
its classes, comma-separated, in label order). Training mixes them with the chat records; a
task's ``weight`` is its sampling weight — each epoch sees each of its examples ``weight`` times
(a fraction: that share of them, drawn with the run's seed) — and chats count once. Validation
and test perplexity stay on the chats (and plain text) alone, so they compare with a chat-only
run; each task is scored by generation on the test records that have its label: the greedy
answer against the class, exact match (``accuracy``) and macro-F1 over the task's classes.
"""

from __future__ import annotations

import random
from typing import Any

from training.config import TaskSpec
from training.multitask import task_value

OTHER = "<other>"
"""What an answer naming none of the task's classes counts as, for macro-F1."""


class InstructionTasks:
    """The classification tasks of a causal-lm run, rendered as instruction chats."""

    def __init__(self, tasks: dict[str, TaskSpec], rows: dict[str, list[dict[str, Any]]]) -> None:
        self.tasks = tasks
        self.rows = {split: [r for r in split_rows if r.get("text")] for split, split_rows in rows.items()}
        self.labels: dict[str, list[str]] = {}
        self.multi: dict[str, bool] = {}
        for name, spec in tasks.items():
            values = [v for rs in self.rows.values() for r in rs if (v := task_value(r, spec.column)) is not None]
            if not values:
                raise ValueError(f"task {name!r}: no text record of the release has a value at {spec.column}")
            self.multi[name] = any(isinstance(v, list) for v in values)
            self.labels[name] = sorted({str(x) for v in values for x in (v if isinstance(v, list) else [v])})

    def prompt(self, name: str, text: str) -> list[dict[str, str]]:
        spec = self.tasks[name]
        content = spec.prompt.format(task=name, labels=", ".join(self.labels[name]), text=text)
        return [{"role": "user", "content": content}]

    def answer(self, name: str, value: Any) -> str:
        chosen = {str(v) for v in value} if isinstance(value, list) else {str(value)}
        return ", ".join(label for label in self.labels[name] if label in chosen)

    def examples(self, split: str, name: str) -> list[tuple[list[dict[str, str]], str]]:
        """(prompt, answer) of every record of ``split`` with a value for task ``name``."""
        column = self.tasks[name].column
        return [
            (self.prompt(name, r["text"]), self.answer(name, value))
            for r in self.rows[split]
            if (value := task_value(r, column)) is not None
        ]

    def training_chats(self, seed: int) -> list[dict[str, Any]]:
        """The instruction chats of the train split, each task's sampled by its weight."""
        rng = random.Random(seed)
        chats = []
        for name, spec in self.tasks.items():
            examples = self.examples("train", name)
            whole, fraction = int(spec.weight), spec.weight - int(spec.weight)
            chosen = examples * whole + rng.sample(examples, round(fraction * len(examples)))
            chats += [
                {"text": None, "messages": [*prompt, {"role": "assistant", "content": answer}]}
                for prompt, answer in chosen
            ]
        return chats

    def score(self, model: Any, tokenizer: Any, seed: int) -> tuple[dict[str, float], dict[str, Any]]:
        """Each task's exact-match accuracy and macro-F1 from greedy answers to its test prompts."""
        import torch
        from sklearn.metrics import f1_score

        from training.evaluation import generate_answers

        scores: dict[str, float] = {}
        details: dict[str, Any] = {}
        for name in self.tasks:
            examples = self.examples("test", name)
            if not examples:
                continue
            candidates = (*self.labels[name], ", ".join(self.labels[name]))
            longest = max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in candidates)
            torch.manual_seed(seed)
            answers = generate_answers(model, tokenizer, [p for p, _ in examples], max_new_tokens=longest + 2)
            predicted = [self._normalised(name, a) for a in answers]
            truth = [t for _, t in examples]
            scores[f"{name}_accuracy"] = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
            scores[f"{name}_macro_f1"] = float(
                f1_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0)
            )
            details[name] = [{"answer": a, "expected": t} for a, t in zip(answers, truth, strict=True)][:20]
        return scores, details

    def _normalised(self, name: str, answer: str) -> str:
        """An answer as a class (or class list), forgiving case, spaces and a final full stop."""
        first_line = answer.strip().splitlines()[0] if answer.strip() else ""
        said = {part.strip().strip(".").lower() for part in first_line.split(",") if part.strip()}
        named = [label for label in self.labels[name] if label.lower() in said]
        if not named or (not self.multi[name] and len(named) > 1):
            return OTHER
        return ", ".join(named)
