"""Shared by text augmenters: which chat turns to rewrite, and how a derived record is built."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from pydantic import Field

from corpusmill.schema import Augmentation, Record
from corpusmill.steps import AugmenterParams


class TextAugmenterParams(AugmenterParams):
    n: int = 1
    """Variants per record."""
    roles: list[str] = Field(default_factory=lambda: ["user"])
    """Chat turns rewritten (assistant answers stay as written unless listed)."""


def rng_for(seed: int, *parts: object) -> random.Random:
    """A random generator that depends only on the seed and the record, never on worker order."""
    digest = hashlib.sha256("\0".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def derive(
    parent: Record, index: int, method: str, params: dict[str, Any], texts: list[str], roles: list[str]
) -> Record:
    """The ``index``-th variant of ``parent``: ``texts`` replace its text, or its turns in ``roles``."""
    update: dict[str, Any] = {
        "id": f"{parent.id}~{method}{index}",
        "parent_id": parent.id,
        "group": parent.group_key,
        "split": parent.split,
        "augmentation": Augmentation(method=method, params=params),
        "meta": {"augmented_from": parent.id},
    }
    if parent.text is not None:
        update["text"] = texts[0]
    else:
        replacements = iter(texts)
        update["messages"] = [
            m.model_copy(update={"content": next(replacements)}) if m.role in roles else m
            for m in parent.messages or []
        ]
    return parent.model_copy(update=update)


def texts_to_rewrite(record: Record, roles: list[str]) -> list[str]:
    if record.text is not None:
        return [record.text]
    return [m.content for m in record.messages or [] if m.role in roles]
