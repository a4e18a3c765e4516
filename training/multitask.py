"""Multi-task learning on one encoder: a classification head per task over a shared encoder.

Each task names where its targets are (``label``, or ``meta.<key>`` for a second label the import
kept), its loss weight, and is single- or multi-label by what its values are. The loss is the
weighted sum of the tasks' losses; a record without a task's label adds nothing to that task's
loss, and a task of weight 0 is left out of the loss altogether (its head stays as initialised).
``loss_weighting: uncertainty`` learns the balance instead (Kendall, Gal and Cipolla 2018): each
task gets a learned log-variance ``s``, its loss becomes ``exp(-s) * loss + s / 2`` (their
classification form), so a noisy or hard task is down-weighted without hand tuning. Chosen over
GradNorm because it needs no second backward pass per step and no extra hyperparameter, which
matters on CPU-sized budgets; the fixed weights still scale each term.

The model is a plain ``torch.nn.Module`` (the encoder as ``AutoModel`` loads it, mean-pooled as
sentence-transformers trains MiniLM, then one ``Linear`` head per task), saved as the encoder's
own ``save_pretrained`` directory plus ``heads.safetensors`` and ``multitask.json``, so a later
run can start from it (``--init-from``) and the encoder alone loads anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from corpusmill.errors import InputError
from training.config import TaskSpec
from training.tasks import label_names, model_config, named_rows

MULTITASK_FILE = "multitask.json"
HEADS_FILE = "heads.safetensors"


def task_value(row: dict[str, Any], column: str) -> Any:
    """A row's target for a task: its ``label``, or ``meta.<key>`` (parquet holds meta as JSON)."""
    if column == "label":
        return row.get("label")
    meta = row.get("meta")
    if isinstance(meta, str):
        meta = json.loads(meta) if meta else {}
    value = (meta or {}).get(column.removeprefix("meta."))
    return None if value == "" else value


class TargetLayout:
    """Where each task's targets sit in one row's flat ``labels`` vector: a single-label task
    takes one slot (the class index, -100 when the record has no label for it), a multi-label
    task one slot per class (0/1, all -100 when absent). One vector per record lets the
    ``Trainer`` batch, pad and gather every task's targets as it does one task's."""

    def __init__(self, tasks: dict[str, TaskSpec], labels: dict[str, list[str]], multi: dict[str, bool]) -> None:
        self.tasks, self.labels, self.multi = tasks, labels, multi
        self.slots: dict[str, slice] = {}
        start = 0
        for name in tasks:
            width = len(labels[name]) if multi[name] else 1
            self.slots[name] = slice(start, start + width)
            start += width
        self.width = start
        self.logit_slots: dict[str, slice] = {}
        start = 0
        for name in tasks:
            self.logit_slots[name] = slice(start, start + len(labels[name]))
            start += len(labels[name])

    def targets(self, row: dict[str, Any]) -> list[float]:
        out: list[float] = []
        for name, spec in self.tasks.items():
            value = task_value(row, spec.column)
            names = self.labels[name]
            if self.multi[name]:
                present = value if isinstance(value, list) else None if value is None else [value]
                out += [-100.0] * len(names) if present is None else [float(n in present) for n in names]
            else:
                out.append(-100.0 if value is None else float(names.index(str(value))))
        return out


class MultiTaskTask:
    """The ``multi-task`` task for :class:`training.run.Experiment`: rows, datasets, model, metrics."""

    name = "multi-task"
    objective = ("macro_f1", "maximize")

    def __init__(
        self, model_path: str, splits: dict[str, Any], max_length: int, tasks: dict[str, TaskSpec], weighting: str
    ) -> None:
        from transformers import AutoTokenizer

        self.model_path, self.max_length, self.weighting = model_path, max_length, weighting
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.rows = {split: [r for r in named_rows(ds) if r["text"]] for split, ds in splits.items()}
        labels, multi = {}, {}
        declared = next((names for ds in splits.values() if (names := label_names(ds))), None)
        for name, spec in tasks.items():
            values = [task_value(r, spec.column) for rows in self.rows.values() for r in rows]
            values = [v for v in values if v is not None]
            if not values:
                raise InputError(spec.column, f"task {name!r}: no record of the release has a value there")
            multi[name] = any(isinstance(v, list) for v in values)
            flat = {str(x) for v in values for x in (v if isinstance(v, list) else [v])}
            labels[name] = declared if spec.column == "label" and declared else sorted(flat)
        self.layout = TargetLayout(tasks, labels, multi)
        self.labels = [f"{name}:{label}" for name in tasks for label in labels[name]]

    @property
    def tasks(self) -> dict[str, TaskSpec]:
        return self.layout.tasks

    def dataset(self, split: str, drop_augmented: bool = False) -> Any:
        import datasets

        rows = [r for r in self.rows[split] if not (drop_augmented and r.get("parent_id"))]
        encoded = self.tokenizer([r["text"] for r in rows], truncation=True, max_length=self.max_length)
        return datasets.Dataset.from_dict({**encoded, "labels": [self.layout.targets(r) for r in rows]})

    def model(self, dropout: float | None, weights: str | None = None) -> Any:
        """A fresh model on the base encoder, or on ``weights``: an earlier run's model (a
        multi-task one gives its encoder and the heads of tasks it shares, label for label; a
        classification one its encoder)."""
        model = MultiTaskModel(weights or self.model_path, self.layout, self.weighting, dropout)
        if weights and (Path(weights) / MULTITASK_FILE).is_file():
            model.load_heads(Path(weights), only_matching=True)
        return model

    def load(self, model_dir: Path) -> Any:
        model = MultiTaskModel(str(model_dir), self.layout, self.weighting, None)
        model.load_heads(model_dir, only_matching=False)
        return model

    def collator(self) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(self.tokenizer)

    def reduce_logits(self, logits: Any, labels: Any) -> Any:
        """Per task, the predicted class index (single-label) or 0/1 per class, laid out as the targets."""
        logits = logits[0] if isinstance(logits, tuple) else logits
        parts = []
        for name in self.tasks:
            task_logits = logits[:, self.layout.logit_slots[name]]
            if self.layout.multi[name]:
                parts.append((torch.sigmoid(task_logits) > 0.5).float())
            else:
                parts.append(task_logits.argmax(-1, keepdim=True).float())
        return torch.cat(parts, dim=1)

    def _present(self, prediction: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per task, the (true, predicted) of the records that have its label."""
        out = {}
        for name in self.tasks:
            slot = self.layout.slots[name]
            true, predicted = prediction.label_ids[:, slot], prediction.predictions[:, slot]
            keep = true[:, 0] != -100
            true, predicted = true[keep].astype(int), predicted[keep].astype(int)
            out[name] = (true, predicted) if self.layout.multi[name] else (true[:, 0], predicted[:, 0])
        return out

    def metrics(self, prediction: Any) -> dict[str, float]:
        """Each task's accuracy and macro-F1 (on the records that have its label), and their
        means, ``accuracy`` and ``macro_f1``, which the search optimises by default."""
        from sklearn.metrics import accuracy_score, f1_score

        scores: dict[str, float] = {}
        for name, (true, predicted) in self._present(prediction).items():
            if len(true):
                scores[f"{name}_accuracy"] = float(accuracy_score(true, predicted))
                scores[f"{name}_macro_f1"] = float(f1_score(true, predicted, average="macro", zero_division=0))
        for metric in ("accuracy", "macro_f1"):
            values = [scores[f"{name}_{metric}"] for name in self.tasks if f"{name}_{metric}" in scores]
            scores[metric] = float(np.mean(values)) if values else 0.0
        return scores

    def details(self, prediction: Any) -> dict[str, Any]:
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        out: dict[str, Any] = {}
        for name, (true, predicted) in self._present(prediction).items():
            labels = self.layout.labels[name]
            multi = self.layout.multi[name]
            p, r, f, support = precision_recall_fscore_support(
                true, predicted, zero_division=0, labels=None if multi else range(len(labels))
            )
            task: dict[str, Any] = {
                "labels": labels,
                "records": len(true),
                "per_class": {
                    label: {
                        "precision": round(float(p[i]), 4),
                        "recall": round(float(r[i]), 4),
                        "f1": round(float(f[i]), 4),
                        "support": int(support[i]),
                    }
                    for i, label in enumerate(labels)
                },
            }
            if not multi:
                task["confusion_matrix"] = confusion_matrix(true, predicted, labels=range(len(labels))).tolist()
            out[name] = task
        return {"tasks": out}


class MultiTaskModel(torch.nn.Module):
    """A shared encoder, mean-pooled, and one linear head per task."""

    def __init__(self, encoder_path: str, layout: TargetLayout, weighting: str, dropout: float | None) -> None:
        from transformers import AutoModel

        super().__init__()
        self.layout, self.weighting = layout, weighting
        self.encoder = AutoModel.from_pretrained(encoder_path, config=model_config(encoder_path, dropout))
        hidden = self.encoder.config.hidden_size
        rate = dropout if dropout is not None else getattr(self.encoder.config, "hidden_dropout_prob", 0.1)
        self.dropout = torch.nn.Dropout(rate)
        self.heads = torch.nn.ModuleDict(
            {name: torch.nn.Linear(hidden, len(layout.labels[name])) for name in layout.tasks}
        )
        # uncertainty weighting's learned log-variances, one per task (unused with fixed weights)
        self.log_variances = torch.nn.Parameter(
            torch.zeros(len(layout.tasks)), requires_grad=weighting == "uncertainty"
        )

    def forward(
        self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None, labels: Any = None
    ) -> dict[str, Any]:
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = self.dropout((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9))
        logits = {name: head(pooled) for name, head in self.heads.items()}
        out: dict[str, Any] = {"logits": torch.cat([logits[name] for name in self.layout.tasks], dim=1)}
        if labels is not None:
            out["loss"] = self.loss(logits, labels)
        return out

    def task_losses(self, logits: dict[str, Any], labels: Any) -> dict[str, Any]:
        """Each task's mean loss over the batch's records that have its label; a task no record
        of the batch has is missing from the result (it adds no loss, not a zero with a gradient)."""
        losses = {}
        for name, spec in self.layout.tasks.items():
            if spec.weight == 0:
                continue
            target = labels[:, self.layout.slots[name]]
            present = target[:, 0] != -100
            if not present.any():
                continue
            if self.layout.multi[name]:
                losses[name] = F.binary_cross_entropy_with_logits(logits[name][present], target[present])
            else:
                losses[name] = F.cross_entropy(logits[name][present], target[present, 0].long())
        return losses

    def loss(self, logits: dict[str, Any], labels: Any) -> Any:
        """The weighted sum of the task losses (with uncertainty weighting, each term
        ``exp(-s) * weight * loss + s / 2``)."""
        total = torch.zeros((), device=labels.device)
        losses = self.task_losses(logits, labels)
        for index, name in enumerate(self.layout.tasks):
            if name not in losses:
                continue
            weighted = self.layout.tasks[name].weight * losses[name]
            if self.weighting == "uncertainty":
                s = self.log_variances[index]
                weighted = torch.exp(-s) * weighted + 0.5 * s
            total = total + weighted
        return total

    def save(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(str(out))
        state = {
            f"{name}.{key}": value.contiguous()
            for name, head in self.heads.items()
            for key, value in head.state_dict().items()
        }
        state["log_variances"] = self.log_variances.detach().contiguous()
        save_file(state, str(out / HEADS_FILE))
        spec = {
            "tasks": {name: spec.model_dump() for name, spec in self.layout.tasks.items()},
            "labels": self.layout.labels,
            "multi_label": self.layout.multi,
            "loss_weighting": self.weighting,
        }
        (out / MULTITASK_FILE).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")

    def load_heads(self, model_dir: Path, only_matching: bool) -> None:
        """The saved heads; with ``only_matching``, only those of tasks with the same labels (a
        head for other classes would be meaningless), the others staying as initialised."""
        saved = json.loads((model_dir / MULTITASK_FILE).read_text(encoding="utf-8"))
        state = load_file(str(model_dir / HEADS_FILE))
        for name, head in self.heads.items():
            if saved["labels"].get(name) != self.layout.labels[name]:
                if not only_matching:
                    raise InputError(str(model_dir), f"task {name!r} was saved with other labels")
                continue
            head.load_state_dict(
                {key.removeprefix(f"{name}."): value for key, value in state.items() if key.startswith(f"{name}.")}
            )
