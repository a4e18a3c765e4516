"""The split report: counts, per-class proportions, divergence from the whole, and leakage."""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from corpusmill.minhash import MinHasher, ShingleSettings, near_duplicate_clusters, normalise
from corpusmill.schema import Record


class LeakageSettings(BaseModel):
    """Exact and near-duplicate checks between train and the other splits."""

    model_config = ConfigDict(extra="forbid")

    check: bool = True
    threshold: float = Field(default=0.8, gt=0, lt=1)
    shingle: Literal["words", "chars"] = "chars"
    shingle_size: int = Field(default=5, ge=1)
    fail_on_leakage: bool = False


def _labels(record: Record) -> list[str]:
    if record.label is None:
        return []
    return record.label if isinstance(record.label, list) else [record.label]


def js_divergence(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen–Shannon divergence (base 2, 0 = same distribution, 1 = disjoint)."""
    keys = set(p) | set(q)
    m = {k: (p.get(k, 0) + q.get(k, 0)) / 2 for k in keys}

    def kl(a: dict[str, float]) -> float:
        return sum(a[k] * math.log2(a[k] / m[k]) for k in keys if a.get(k, 0) > 0)

    return round((kl(p) + kl(q)) / 2, 6)


def _distribution(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def leakage(records: Sequence[Record], splits: Sequence[str], settings: LeakageSettings) -> dict[str, Any]:
    """Validation/test records whose text (exactly, or nearly) is also in train."""
    result: dict[str, Any] = {"checked": settings.check, "exact": 0, "near": 0, "total": 0, "pairs": []}
    if not settings.check or not records:
        return result
    keys = [hashlib.sha256(normalise(r.body, True, True).encode()).digest() for r in records]
    train_by_key = {}
    for record, split, key in zip(records, splits, keys, strict=True):
        if split == "train":
            train_by_key.setdefault(key, record.id)
    leaked: dict[int, dict[str, Any]] = {}
    for index, (record, split, key) in enumerate(zip(records, splits, keys, strict=True)):
        if split != "train" and key in train_by_key:
            leaked[index] = {
                "kind": "exact",
                "train_id": train_by_key[key],
                "id": record.id,
                "split": split,
                "similarity": 1.0,
            }
    hasher = MinHasher(ShingleSettings(settings.shingle, settings.shingle_size))
    roots, _ = near_duplicate_clusters(hasher.signatures([r.body for r in records]), settings.threshold)
    members: dict[int, list[int]] = defaultdict(list)
    for index, root in enumerate(roots):
        members[root].append(index)
    for cluster in members.values():
        train = [i for i in cluster if splits[i] == "train"]
        if not train:
            continue
        for index in cluster:
            if splits[index] != "train" and index not in leaked:
                leaked[index] = {
                    "kind": "near",
                    "train_id": records[train[0]].id,
                    "id": records[index].id,
                    "split": splits[index],
                }
    result["exact"] = sum(1 for v in leaked.values() if v["kind"] == "exact")
    result["near"] = sum(1 for v in leaked.values() if v["kind"] == "near")
    result["total"] = len(leaked)
    result["by_split"] = dict(sorted(Counter(v["split"] for v in leaked.values()).items()))
    result["pairs"] = [leaked[i] for i in sorted(leaked)]
    return result


def split_report(
    records: Sequence[Record],
    splits: Sequence[str],
    names: list[str],
    ratios: dict[str, float],
    rare: dict[str, int],
    rare_policy: str,
    settings: LeakageSettings,
    moved_from_previous: int = 0,
    kept_from_previous: int = 0,
) -> dict[str, Any]:
    split_counts = Counter(splits)
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    whole: Counter[str] = Counter()
    for record, split in zip(records, splits, strict=True):
        for label in _labels(record):
            per_class[label][split] += 1
            whole[label] += 1
    largest: dict[str, Any] = {"label": None, "split": None, "records": 0.0}
    classes = {}
    for label in sorted(per_class, key=lambda lb: (-whole[lb], lb)):
        counts = per_class[label]
        n = sum(counts.values())
        classes[label] = {"total": whole[label], **{s: counts.get(s, 0) for s in names}}
        if label in rare:
            continue
        for s in names:
            deviation = counts.get(s, 0) - n * ratios[s]
            if abs(deviation) > abs(largest["records"]):
                largest = {"label": label, "split": s, "records": round(deviation, 3)}
    overall = _distribution(whole)
    divergence = {}
    for s in names:
        in_split: Counter[str] = Counter({label: per_class[label].get(s, 0) for label in per_class})
        divergence[s] = js_divergence(_distribution(+in_split), overall) if whole else 0.0
    return {
        "splits": {s: split_counts.get(s, 0) for s in names},
        "ratios": ratios,
        "classes": classes,
        "largest_deviation": largest,
        "js_divergence": divergence,
        "rare_classes": dict(sorted(rare.items())),
        "rare_policy": rare_policy,
        "previous": {"kept": kept_from_previous, "moved": moved_from_previous},
        "leakage": leakage(records, splits, settings),
    }
