"""The two tasks: turning release rows into model inputs, building the model, and scoring it.

* ``classification``: ``AutoModelForSequenceClassification`` over the release's labels (single- or
  multi-label); accuracy, macro- and weighted-F1, per-class precision/recall/F1, confusion matrix.
* ``causal-lm``: ``AutoModelForCausalLM``; chats rendered with the tokenizer's chat template when
  it has one, else the plain template ``<|role|>\\ncontent\\n`` per turn; the loss covers assistant
  turns only (their content and end of turn), plain-text records are ordinary LM data; perplexity
  is ``exp`` of the mean validation loss, next-token accuracy is measured on assistant tokens.

Logits are reduced to predicted ids before Trainer accumulates them (memory-safe evaluation).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

DROPOUT_FIELDS = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "classifier_dropout",
    "dropout",
    "attention_dropout",
    "activation_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "summary_first_dropout",
)
PLAIN_TEMPLATE = "<|{role}|>\n"


def model_config(path: str, dropout: float | None, **overrides: Any):  # type: ignore[no-untyped-def]
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, **overrides)
    if dropout is not None:
        for field in DROPOUT_FIELDS:
            if hasattr(config, field):
                setattr(config, field, dropout)
    return config


def label_names(dataset: Any) -> list[str] | None:
    """The names of a release's ``ClassLabel`` label column (``List(ClassLabel)`` for
    multi-label), in the release's order; none for a release whose labels are strings."""
    feature = dataset.features.get("label")
    feature = getattr(feature, "feature", feature)  # the ClassLabel inside a list
    names = getattr(feature, "names", None)
    return list(names) if names is not None else None


def named_rows(dataset: Any) -> list[dict[str, Any]]:
    """The split's rows, with ``ClassLabel`` indices as their names."""
    rows = [dict(row) for row in dataset]
    names = label_names(dataset)
    if names is not None:
        for row in rows:
            label = row.get("label")
            if isinstance(label, list):
                row["label"] = [names[i] for i in label]
            elif label is not None:
                row["label"] = names[label]
    return rows


def _saved_labels(model_dir: str) -> list[str] | None:
    """The labels a saved classifier was trained for, in order (none for a bare encoder)."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    if not config.get("architectures", [""])[0].endswith("ForSequenceClassification"):
        return None
    return [config["id2label"][str(i)] for i in range(len(config.get("id2label", {})))]


class ClassificationTask:
    name = "classification"
    auto_class = "AutoModelForSequenceClassification"
    objective = ("macro_f1", "maximize")

    def __init__(self, model_path: str, splits: dict[str, Any], max_length: int) -> None:
        from transformers import AutoTokenizer

        self.model_path = model_path
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.max_length = max_length
        rows = {
            name: [r for r in named_rows(ds) if r["label"] is not None and r["text"]] for name, ds in splits.items()
        }
        self.multi_label = any(isinstance(r["label"], list) for rs in rows.values() for r in rs)
        labels: set[str] = set()
        for rs in rows.values():
            for r in rs:
                labels.update(r["label"] if self.multi_label else [r["label"]])
        declared = next((names for ds in splits.values() if (names := label_names(ds))), None)
        self.labels = declared or sorted(labels)  # the release's ids, when it declares them
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.rows = rows

    def dataset(self, split: str, drop_augmented: bool = False) -> Any:
        import datasets

        rows = [r for r in self.rows[split] if not (drop_augmented and r.get("parent_id"))]
        encoded = self.tokenizer([r["text"] for r in rows], truncation=True, max_length=self.max_length)
        if self.multi_label:
            targets = [[1.0 if label in r["label"] else 0.0 for label in self.labels] for r in rows]
        else:
            targets = [self.index[r["label"]] for r in rows]
        return datasets.Dataset.from_dict({**encoded, "labels": targets})

    def model(self, dropout: float | None, weights: str | None = None) -> Any:
        """A classifier on the base model, or on ``weights`` (an earlier run's model): all of it
        when that run had these labels in this order, else its encoder under a new head."""
        from transformers import AutoModel, AutoModelForSequenceClassification

        config = model_config(
            self.model_path,
            dropout,
            num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id=self.index,
            problem_type="multi_label_classification" if self.multi_label else "single_label_classification",
        )
        if weights is not None and _saved_labels(weights) == self.labels:
            return AutoModelForSequenceClassification.from_pretrained(weights, config=config)
        model = AutoModelForSequenceClassification.from_pretrained(self.model_path, config=config)
        if weights is not None:
            model.base_model.load_state_dict(AutoModel.from_pretrained(weights).state_dict())
        return model

    def collator(self) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(self.tokenizer)

    def reduce_logits(self, logits: Any, labels: Any) -> Any:
        import torch

        logits = logits[0] if isinstance(logits, tuple) else logits
        return (torch.sigmoid(logits) > 0.5).int() if self.multi_label else logits.argmax(-1)

    def metrics(self, prediction: Any) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, f1_score

        predicted, labels = prediction.predictions, prediction.label_ids
        if self.multi_label:
            labels = (labels > 0.5).astype(int)
        return {
            "accuracy": float(accuracy_score(labels, predicted)),
            "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
            "weighted_f1": float(f1_score(labels, predicted, average="weighted", zero_division=0)),
        }

    def details(self, prediction: Any) -> dict[str, Any]:
        """Per-class precision/recall/F1 and the confusion matrix (single-label) of a test run."""
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        predicted, labels = prediction.predictions, prediction.label_ids
        if self.multi_label:
            labels = (labels > 0.5).astype(int)
        p, r, f, support = precision_recall_fscore_support(
            labels, predicted, zero_division=0, labels=None if self.multi_label else range(len(self.labels))
        )
        per_class = {
            label: {
                "precision": round(float(p[i]), 4),
                "recall": round(float(r[i]), 4),
                "f1": round(float(f[i]), 4),
                "support": int(support[i]),
            }
            for i, label in enumerate(self.labels)
        }
        out: dict[str, Any] = {"per_class": per_class}
        if not self.multi_label:
            out["confusion_matrix"] = confusion_matrix(labels, predicted, labels=range(len(self.labels))).tolist()
        return out


class CausalLMTask:
    name = "causal-lm"
    auto_class = "AutoModelForCausalLM"
    objective = ("perplexity", "minimize")

    def __init__(self, model_path: str, splits: dict[str, Any], max_length: int) -> None:
        from transformers import AutoTokenizer

        self.model_path = model_path
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_length = max_length
        self.rows = {name: [r for r in named_rows(ds) if r["text"] or r["messages"]] for name, ds in splits.items()}
        self.labels: list[str] = []
        self.instructions: Any = None
        """Classification tasks as instruction chats (``training.instructions``), set by the
        experiment for a generative multi-task run: trained beside the rows, never in the
        validation or test perplexity."""
        self.seed = 0

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        return render_chat(self.tokenizer, messages, add_generation_prompt)

    def encode(self, row: dict[str, Any]) -> tuple[list[int], list[int]]:
        """Input ids and labels; labels are -100 everywhere but on assistant turns.

        An assistant turn's role header (what the template adds before the content, found by
        rendering the conversation so far with ``add_generation_prompt``) is context; its content
        and its end-of-turn token are the target; anything the template writes after that token
        (a newline) is context again. The end-of-turn is the template's own when it writes the
        EOS token, and an appended EOS otherwise.
        """
        eos_id, eos = self.tokenizer.eos_token_id, self.tokenizer.eos_token
        if not row["messages"]:
            ids = self.tokenizer(row["text"], add_special_tokens=False)["input_ids"] + [eos_id]
            return ids[: self.max_length], ids[: self.max_length]
        ids: list[int] = []
        labels: list[int] = []

        def add(text: str, target: bool) -> None:
            piece = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
            ids.extend(piece)
            labels.extend(piece if target else [-100] * len(piece))

        previous = ""
        messages = row["messages"]
        for i, message in enumerate(messages):
            rendered = self.render(messages[: i + 1])
            if message["role"] != "assistant":
                add(rendered[len(previous) :], target=False)
                previous = rendered
                continue
            prompt = self.render(messages[:i], add_generation_prompt=True)
            add(prompt[len(previous) :], target=False)
            body = rendered[len(prompt) :]
            if eos and eos in body:
                cut = body.index(eos) + len(eos)
                add(body[:cut], target=True)
                add(body[cut:], target=False)
            else:
                add(body, target=True)
                ids.append(eos_id)
                labels.append(eos_id)
            previous = rendered
        return ids[: self.max_length], labels[: self.max_length]

    def use_only(self, field: str) -> None:
        """Keep only chat records (``messages``) or only plain-text records (``text``) in every split."""
        for split, rows in self.rows.items():
            self.rows[split] = [r for r in rows if r[field]]

    def dataset(self, split: str, drop_augmented: bool = False) -> Any:
        import datasets

        rows = [r for r in self.rows[split] if not (drop_augmented and r.get("parent_id"))]
        if split == "train" and self.instructions is not None:
            rows += self.instructions.training_chats(self.seed)
        encoded = [self.encode(r) for r in rows]
        encoded = [(ids, labels) for ids, labels in encoded if any(x != -100 for x in labels)]
        return datasets.Dataset.from_dict(
            {
                "input_ids": [i for i, _ in encoded],
                "labels": [labels for _, labels in encoded],
                "attention_mask": [[1] * len(i) for i, _ in encoded],
            }
        )

    def model(self, dropout: float | None, weights: str | None = None) -> Any:
        """The base model, or ``weights`` (an earlier run's: a domain-text run before a chat run)."""
        from transformers import AutoModelForCausalLM

        config = model_config(weights or self.model_path, dropout)
        config.pad_token_id = self.tokenizer.pad_token_id
        return AutoModelForCausalLM.from_pretrained(weights or self.model_path, config=config)

    def collator(self) -> Any:
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(self.tokenizer, label_pad_token_id=-100, padding=True)

    def reduce_logits(self, logits: Any, labels: Any) -> Any:
        logits = logits[0] if isinstance(logits, tuple) else logits
        return logits.argmax(-1)

    def metrics(self, prediction: Any) -> dict[str, float]:
        predicted, labels = prediction.predictions[:, :-1], prediction.label_ids[:, 1:]
        mask = labels != -100
        return {"next_token_accuracy": float((predicted[mask] == labels[mask]).mean()) if mask.any() else 0.0}

    def details(self, prediction: Any) -> dict[str, Any]:
        return {}


def render_chat(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """The conversation as the model sees it: the tokenizer's chat template, else the plain
    ``<|role|>\\ncontent\\n`` turns."""
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    text = "".join(PLAIN_TEMPLATE.format(role=m["role"]) + m["content"] + "\n" for m in messages)
    return text + (PLAIN_TEMPLATE.format(role="assistant") if add_generation_prompt else "")


def distinct(texts: list[str], n: int) -> float:
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        words = text.split()
        grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return round(len(grams) / total, 4) if total else 0.0


def perplexity(loss: float) -> float:
    return float(math.exp(min(loss, 50)))


TASKS = {"classification": ClassificationTask, "causal-lm": CausalLMTask}


def to_jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if isinstance(v, np.ndarray) else str(v)))
