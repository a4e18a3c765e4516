"""The split report: counts, per-class proportions, divergence from the whole, and leakage."""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import IO, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from corpusmill.minhash import (
    MinHasher,
    ShingleSettings,
    band_candidates,
    band_keys,
    cluster_roots,
    normalise,
    optimal_bands,
)
from corpusmill.reports import markdown_table
from corpusmill.steps import SplitKey

SIGNATURE_BATCH = 10_000
"""Texts hashed per numpy pass in the leakage check."""


class LeakageSettings(BaseModel):
    """Exact and near-duplicate checks between train and the other splits."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    check: bool = True
    threshold: float = Field(default=0.8, gt=0, lt=1)
    shingle: Literal["words", "chars"] = "chars"
    shingle_size: int = Field(default=5, ge=1)
    fail_on_leakage: bool = False


def _labels(key: SplitKey) -> list[str]:
    if key.label is None:
        return []
    return key.label if isinstance(key.label, list) else [key.label]


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


def leakage(
    keys: Sequence[SplitKey], splits: Sequence[str], bodies: Iterable[str], settings: LeakageSettings
) -> dict[str, Any]:
    """Validation/test records whose text (exactly, or nearly) is also in train.

    ``bodies`` streams the records' texts in ``keys`` order, once. Per record, memory keeps a
    64-bit digest and the LSH band keys of its MinHash signature (about 80 bytes, where the
    signature is 512); the signatures go to a temporary file, from which only the records that
    share a band with another — the only ones whose similarity is ever checked — are read back.
    The texts are never held."""
    result: dict[str, Any] = {"checked": settings.check, "exact": 0, "near": 0, "total": 0, "pairs": []}
    if not settings.check or not keys:
        return result
    hasher = MinHasher(ShingleSettings(settings.shingle, settings.shingle_size))
    count = len(keys)
    digests = np.empty(count, dtype=np.uint64)  # 8 bytes a record: a 64-bit hash of the normalised text
    band_count, _ = optimal_bands(settings.threshold, hasher.num_perm)
    bands = np.empty((count, band_count), dtype=np.uint64)
    done = 0
    with tempfile.TemporaryFile() as spilled:  # the signatures, in record order, until the candidates are known
        for batch in _batches(bodies):
            if done + len(batch) > count:
                raise ValueError(f"more texts than the {count} records")
            digests[done : done + len(batch)] = [_text_digest(body) for body in batch]
            signatures = hasher.signatures(batch)
            bands[done : done + len(batch)] = band_keys(signatures, settings.threshold)
            spilled.write(signatures.tobytes())
            done += len(batch)
        if done != count:
            raise ValueError(f"{done} texts for {count} records")
        in_train = np.fromiter((split == "train" for split in splits), dtype=bool, count=count)
        train_index = np.flatnonzero(in_train)
        train_digests, first = np.unique(digests[train_index], return_index=True)  # each text's first train record
        others = np.flatnonzero(~in_train)
        position = np.minimum(np.searchsorted(train_digests, digests[others]), max(len(train_digests) - 1, 0))
        exact = train_digests[position] == digests[others] if len(train_digests) else np.zeros(len(others), dtype=bool)
        leaked: dict[int, dict[str, Any]] = {}
        for index, at in zip(others[exact].tolist(), position[exact].tolist(), strict=True):
            leaked[index] = {
                "kind": "exact",
                "train_id": keys[int(train_index[first[at]])].id,
                "id": keys[index].id,
                "split": splits[index],
                "similarity": 1.0,
            }
        del digests, train_digests, first, position
        candidates = band_candidates(bands)
        del bands
        rows = np.unique(np.concatenate([np.concatenate(pair) for pair in candidates] or [np.empty(0, dtype=np.int64)]))
        signatures = _signatures_of(rows, hasher.num_perm, spilled)
    roots = cluster_roots(candidates, count, settings.threshold, lambda i: signatures[int(np.searchsorted(rows, i))])
    del candidates
    root_of = roots
    joined = root_of != np.arange(count)  # a record that joined an earlier record's cluster
    in_clusters = np.flatnonzero(np.isin(root_of, root_of[joined]))  # every member of a cluster of 2 or more
    members: dict[int, list[int]] = defaultdict(list)
    for index in in_clusters.tolist():
        members[int(root_of[index])].append(index)
    for cluster in members.values():
        train = [i for i in cluster if splits[i] == "train"]
        if not train:
            continue
        for index in cluster:
            if splits[index] != "train" and index not in leaked:
                leaked[index] = {
                    "kind": "near",
                    "train_id": keys[train[0]].id,
                    "id": keys[index].id,
                    "split": splits[index],
                }
    result["exact"] = sum(1 for v in leaked.values() if v["kind"] == "exact")
    result["near"] = sum(1 for v in leaked.values() if v["kind"] == "near")
    result["total"] = len(leaked)
    result["by_split"] = dict(sorted(Counter(v["split"] for v in leaked.values()).items()))
    result["pairs"] = [leaked[i] for i in sorted(leaked)]
    return result


def _batches(bodies: Iterable[str]) -> Iterator[list[str]]:
    stream = iter(bodies)
    while batch := list(islice(stream, SIGNATURE_BATCH)):
        yield batch


def _signatures_of(rows: np.ndarray, num_perm: int, spilled: IO[bytes]) -> np.ndarray:
    """The signatures at ``rows`` (sorted) read back from the spill file, a block at a time."""
    out = np.empty((len(rows), num_perm), dtype=np.uint32)
    spilled.seek(0)
    start = filled = 0
    while filled < len(rows):
        block = np.fromfile(spilled, dtype=np.uint32, count=SIGNATURE_BATCH * num_perm).reshape(-1, num_perm)
        if not len(block):
            raise ValueError(f"{filled} signatures for {len(rows)} candidate records")
        wanted = rows[filled : filled + np.searchsorted(rows[filled:], start + len(block))]
        out[filled : filled + len(wanted)] = block[wanted - start]
        filled += len(wanted)
        start += len(block)
    return out


def _text_digest(body: str) -> int:
    """A 64-bit hash of the normalised text: at a million records, the chance that two different
    texts share one is about 3 in 100 million, and it costs 8 bytes a record in a numpy array
    (a SHA-256 ``bytes`` in a dict cost ~150)."""
    return int.from_bytes(hashlib.blake2b(normalise(body, True, True).encode(), digest_size=8).digest(), "little")


def split_report(
    keys: Sequence[SplitKey],
    splits: Sequence[str],
    bodies: Iterable[str],
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
    for key, split in zip(keys, splits, strict=True):
        for label in _labels(key):
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
        "leakage": leakage(keys, splits, bodies, settings),
    }


def render_split_report(report: dict[str, Any]) -> str:
    """The split report as a release-card section (markdown)."""
    names = list(report["splits"])
    parts = ["## Split report", ""]
    deviation = report["largest_deviation"]
    if deviation["label"] is not None:
        parts += [
            f"Largest deviation of a class from its target: {deviation['records']:+} records "
            f"(`{deviation['label']}` in {deviation['split']}). Jensen–Shannon divergence of each split's "
            "label distribution from the whole (0 = identical):",
            "",
            markdown_table(
                ["split", "records", "JS divergence"],
                [[s, report["splits"][s], report["js_divergence"][s]] for s in names],
            ),
            "",
        ]
    if report["rare_classes"]:
        parts += [
            f"Classes too small for every split (policy `{report['rare_policy']}`):",
            "",
            markdown_table(["label", "records"], sorted(report["rare_classes"].items())),
            "",
        ]
    previous = report["previous"]
    if previous["kept"]:
        parts += [f"{previous['kept']} records came from the previous release; {previous['moved']} changed split.", ""]
    leak = report["leakage"]
    if leak["checked"]:
        parts += [
            f"Leakage check: {leak['exact']} validation/test records are exact duplicates of train records "
            f"(after normalisation) and {leak['near']} are near-duplicates (MinHash).",
            "",
        ]
        if leak["pairs"]:
            parts += [
                markdown_table(
                    ["kind", "split", "record", "train record"],
                    [[p["kind"], p["split"], p["id"], p["train_id"]] for p in leak["pairs"][:20]],
                ),
                "",
            ]
    return "\n".join(parts)
