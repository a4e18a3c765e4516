"""Where step classes are found by the name a build config uses.

A stage package registers each step with :func:`register`; adding a filter, importer, splitter or
augmenter is one class plus its decorator, with no edits elsewhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from corpusmill.steps import PipelineStep

StepT = TypeVar("StepT", bound=type[PipelineStep])

STAGE_PACKAGES = ("crawlers", "cleaning", "splitting", "augment")
"""Imported on first lookup so their ``@register`` decorators run."""

_STEPS: dict[tuple[str, str], type[PipelineStep]] = {}


def register(name: str) -> Callable[[StepT], StepT]:
    """Class decorator: make a step available to build configs under ``name``."""

    def decorate(cls: StepT) -> StepT:
        key = (cls.kind, name)
        if key in _STEPS and _STEPS[key] is not cls:
            raise ValueError(f"two {cls.kind} steps are registered as {name!r}")
        cls.name = name
        _STEPS[key] = cls
        return cls

    return decorate


def _load_stage_packages() -> None:
    for package in STAGE_PACKAGES:
        importlib.import_module(package)


def step_names(kind: str) -> list[str]:
    _load_stage_packages()
    return sorted(name for step_kind, name in _STEPS if step_kind == kind)


def get_step(kind: str, name: str) -> type[PipelineStep]:
    """The class registered as ``name`` for ``kind`` (source, clean, split, augment)."""
    _load_stage_packages()
    try:
        return _STEPS[(kind, name)]
    except KeyError:
        known = ", ".join(step_names(kind)) or "none"
        raise KeyError(f"unknown {kind} step {name!r} (known: {known})") from None


def registered_steps() -> list[type[PipelineStep]]:
    """Every registered step class, by kind then name."""
    _load_stage_packages()
    return [_STEPS[key] for key in sorted(_STEPS)]
