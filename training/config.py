"""Training configuration: hyperparameters, the declared objective, and search spaces."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from string import Formatter
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from corpusmill.errors import ConfigError
from corpusmill.schema import dotted_path

Task = Literal["classification", "causal-lm", "multi-task"]
DEFAULT_OBJECTIVES = {
    "classification": ("macro_f1", "maximize"),
    "causal-lm": ("perplexity", "minimize"),
    "multi-task": ("macro_f1", "maximize"),  # the mean of the tasks' macro-F1
}


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(default=5e-5, gt=0)
    epochs: float = Field(default=3, gt=0)
    batch_size: int = Field(default=16, ge=1)
    weight_decay: float = Field(default=0.01, ge=0)
    dropout: float | None = Field(default=None, ge=0, lt=1)
    """Written into every dropout field the model's config has (hidden, attention, classifier…)."""
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    max_length: int = Field(default=128, ge=8)
    gradient_accumulation: int = Field(default=1, ge=1)
    seed: int = 42
    early_stopping_patience: int | None = Field(default=None, ge=1)
    """Stop when the objective has not improved on validation for this many evaluations."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps (overrides ``epochs``): short runs and benchmarks."""
    lora_r: int = Field(default=16, ge=1)
    """LoRA rank (``method: lora``); searchable like every hyperparameter."""
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)


class Objective(BaseModel):
    """What "best" means, declared: never transformers' default of summing every metric."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    direction: Literal["maximize", "minimize"]

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b


class SearchSpace(BaseModel):
    """``grid`` tries every combination; ``random`` samples ``trials`` of them (seeded)."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["grid", "random"] = "grid"
    trials: int | None = Field(default=None, ge=1)
    seed: int = 0
    objective: Objective | None = None
    space: dict[str, list[Any]] = Field(min_length=1)

    @field_validator("space")
    @classmethod
    def _known_hyperparameters(cls, space: dict[str, list[Any]]) -> dict[str, list[Any]]:
        unknown = sorted(set(space) - set(Hyperparameters.model_fields))
        if unknown:
            raise ValueError(
                f"unknown hyperparameter {unknown[0]!r} (known: {', '.join(Hyperparameters.model_fields)})"
            )
        if any(not values for values in space.values()):
            raise ValueError("every hyperparameter needs at least one value")
        return space

    def candidates(self, base: Hyperparameters) -> list[Hyperparameters]:
        names = list(self.space)
        combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*self.space.values())]
        if self.strategy == "random":
            rng = random.Random(self.seed)
            combos = rng.sample(combos, min(self.trials or len(combos), len(combos)))
        return [base.model_copy(update=Hyperparameters(**{**base.model_dump(), **c}).model_dump()) for c in combos]


PROMPT_FIELDS = ("task", "labels", "text")
MAX_TASK_WEIGHT = 100.0
"""A sampling weight repeats a task's examples that many times an epoch: bounded, so a config
cannot make one run hold billions of copies."""


class TaskSpec(BaseModel):
    """One task of a multi-task run: where its targets are and how much its loss counts."""

    model_config = ConfigDict(extra="forbid")

    column: str = "label"
    """``label`` or ``meta.<key>`` (a second label an import kept as a meta column)."""
    weight: float = Field(default=1.0, ge=0, le=MAX_TASK_WEIGHT)
    """multi-task: its loss's weight in the sum (0 leaves the task out of training, its head
    untrained); causal-lm: its sampling weight beside the chats (each example ``weight`` times an
    epoch)."""
    prompt: str = "What is the {task} of this message? Answer with one of: {labels}.\n\n{text}"
    """causal-lm: the instruction turn a record becomes (``{task}``, ``{labels}``, ``{text}``)."""

    @field_validator("column")
    @classmethod
    def _label_or_meta(cls, column: str) -> str:
        if column != "label" and not (column.startswith("meta.") and len(column) > 5):
            raise ValueError("must be 'label' or 'meta.<key>'")
        return column

    @field_validator("prompt")
    @classmethod
    def _formats(cls, prompt: str) -> str:
        """Plain ``{task}``, ``{labels}`` and ``{text}`` only: a service's client writes this
        template, and ``str.format`` would otherwise follow ``{text.__class__…}`` attribute paths."""
        try:
            fields = [
                (name, spec, conversion) for _, name, spec, conversion in Formatter().parse(prompt) if name is not None
            ]
        except ValueError as exc:
            raise ValueError(f"not a template: {exc}") from None
        for name, spec, conversion in fields:
            if name not in PROMPT_FIELDS or spec or conversion:
                raise ValueError(f"only {{task}}, {{labels}} and {{text}} may be filled in, not {{{name}}}")
        if "text" not in {name for name, _, _ in fields}:
            raise ValueError("must hold {text}, where the record's text goes")
        return prompt


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    objective: Objective | None = None
    text_field: Literal["text", "messages", "auto"] = "auto"
    """causal-lm: train and evaluate on chat records only (``messages``), plain text only
    (``text``), or both (``auto``)."""
    method: Literal["full", "lora"] = "full"
    """``lora``: train low-rank adapters (peft) on a frozen base model; ``full``: every weight."""
    target_modules: list[str] | None = None
    """LoRA: module names to adapt; by default every linear projection of the attention and MLP
    blocks, found from the model (peft's ``all-linear``: every ``nn.Linear`` but the output head)."""
    generation_samples: int | None = Field(default=None, ge=0)
    """causal-lm: how many test prompts the base and the tuned model answer (greedy) to be scored
    against the references; ``None``: every test prompt, 0: none."""
    max_new_tokens: int = Field(default=128, ge=1)
    """causal-lm: longest generated answer, in tokens."""
    compare_base: bool = True
    """causal-lm: also evaluate the base model on the same test split and prompts."""
    tasks: dict[str, TaskSpec] = {}
    """The classification tasks, by name (``{intent: {column: label}, topic: {column: meta.topic,
    weight: 0.5}}``). multi-task: one shared encoder, one head each (none named: ``label``
    alone); causal-lm: instruction turns trained beside the chats and scored by generation."""
    loss_weighting: Literal["fixed", "uncertainty"] = "fixed"
    """multi-task: the ``weight`` of each task as given, or learned from each task's uncertainty
    (Kendall et al. 2018) on top of them."""


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"invalid YAML: {exc}") from None


def _validate(model: type[BaseModel], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise ConfigError(where, dotted_path(err["loc"]), message) from None


def load_train_config(path: Path | None) -> TrainConfig:
    return TrainConfig() if path is None else _validate(TrainConfig, _load_yaml(path), str(path))


def load_search_space(path: Path) -> SearchSpace:
    return _validate(SearchSpace, _load_yaml(path), str(path))
