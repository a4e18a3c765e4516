"""Parameter checks shared by steps of different stages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, get_args

import regex
from pydantic import BaseModel


class LocalPath:
    """Marks a ``str`` parameter that may name a local file or directory (a model given by hub id
    or path, a word-list file): confined to the workspace like every ``Path`` field."""


PathOrName = Annotated[str, LocalPath()]


def path_values(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str | Path]]:
    """``(key path, value)`` of every path the client set in ``model`` and the models inside it:
    ``Path``-typed values, and ``str`` values of fields marked :class:`LocalPath`. Defaults are
    the operator's and are not listed."""
    for name in sorted(model.model_fields_set):
        field = type(model).model_fields.get(name)
        marked = field is not None and (
            any(isinstance(m, LocalPath) for m in field.metadata) or _marks_path(field.annotation)
        )
        yield from _paths_in(getattr(model, name), f"{prefix}.{name}" if prefix else name, marked)


def _marks_path(annotation: Any) -> bool:
    """Whether a type (``X | PathOrName``, ``list[PathOrName]`` …) contains a :class:`LocalPath` mark."""
    if any(isinstance(m, LocalPath) for m in getattr(annotation, "__metadata__", ())):
        return True
    return any(_marks_path(arg) for arg in get_args(annotation))


def _paths_in(value: Any, key: str, marked: bool) -> Iterator[tuple[str, str | Path]]:
    if isinstance(value, BaseModel):
        yield from path_values(value, key)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _paths_in(item, f"{key}[{index}]", marked)
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _paths_in(item, f"{key}.{name}", marked)
    elif isinstance(value, Path) or (marked and isinstance(value, str)):
        yield key, value


def outside(root: Path, base: Path, value: str | Path) -> bool:
    """Whether ``value`` (relative to ``base``) resolves outside ``root`` once symlinks are followed."""
    path = Path(value)
    resolved = (path if path.is_absolute() else base / path).resolve()
    return not resolved.is_relative_to(root.resolve())


def nesting_depth_over(data: Any, limit: int) -> str | None:
    """The key path of the first value nested deeper than ``limit`` lists/mappings, if any.

    Iterative, so a hostile 10,000-deep document cannot exhaust the stack while being checked.
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, key, depth = stack.pop()
        if depth > limit:
            return key or "(top level)"
        if isinstance(value, dict):
            stack.extend((item, f"{key}.{name}" if key else str(name), depth + 1) for name, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, f"{key}[{index}]", depth + 1) for index, item in enumerate(value))
    return None


def check_regexes(patterns: list[str]) -> list[str]:
    """Every pattern compiles (with ``regex``, which the steps match with under a timeout);
    the error names the one that does not."""
    for pattern in patterns:
        try:
            regex.compile(pattern)
        except regex.error as exc:
            raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return patterns
