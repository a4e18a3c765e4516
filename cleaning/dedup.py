"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash + LSH).

The first occurrence in input order is kept; a dropped duplicate names the record it duplicates
in ``meta.duplicate_of``. Near-duplicates can instead be kept and clustered (``action: cluster``):
each record then carries ``meta.near_dup_cluster`` and, when it has no group yet, the cluster as
its ``group``, so the splitter keeps the cluster in one split.

MinHash is computed with numpy over all shingles at once (``np.minimum.reduceat``) rather than
with datasketch's per-document objects: the same estimator, several times faster (bench/clean.py).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import DatasetStep

NON_WORD = re.compile(r"[\W_]+")
PRIME = np.uint64(4294967291)  # the largest prime below 2**32
CHUNK = 200_000


class ExactDedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ignore_case: bool = True
    ignore_punctuation: bool = True
    """Treat "Where is my parcel?" and "where is my parcel" as the same text."""


def normalise(text: str, ignore_case: bool, ignore_punctuation: bool) -> str:
    if ignore_case:
        text = text.casefold()
    if ignore_punctuation:
        text = NON_WORD.sub(" ", text)
    return " ".join(text.split())


@register("exact_dedup")
class ExactDedup(DatasetStep):
    Params: ClassVar[type[BaseModel]] = ExactDedupParams

    def decide(self, records: Sequence[Record]) -> Iterable[tuple[Record, str | None]]:
        params: ExactDedupParams = self.params  # type: ignore[assignment]
        first_id: dict[bytes, str] = {}
        for record in records:
            key = hashlib.sha256(
                normalise(record.body, params.ignore_case, params.ignore_punctuation).encode()
            ).digest()
            if key in first_id:
                record.meta["duplicate_of"] = first_id[key]
                yield record, "exact_duplicate"
            else:
                first_id[key] = record.id
                yield record, None


class NearDedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=0.8, gt=0, lt=1)
    """Estimated Jaccard similarity of the shingle sets from which two records are near-duplicates."""
    shingle: Literal["words", "chars"] = "words"
    """Word n-grams suit documents; character n-grams suit short texts (queries, titles)."""
    shingle_size: int = Field(default=5, ge=1)
    num_perm: int = Field(default=128, ge=16, le=1024)
    seed: int = 1
    action: Literal["drop", "cluster"] = "drop"
    ignore_case: bool = True
    ignore_punctuation: bool = True


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """LSH bands × rows minimising false positives + false negatives around ``threshold``."""
    grid = np.linspace(0, 1, 1001)
    best, best_error = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        rows = num_perm // bands
        probability = 1 - (1 - grid**rows) ** bands
        below, above = grid <= threshold, grid >= threshold
        error = np.trapezoid(probability[below], grid[below]) + np.trapezoid(1 - probability[above], grid[above])
        if error < best_error:
            best, best_error = (bands, rows), float(error)
    return best


class MinHasher:
    """MinHash signatures of many texts at once: one numpy pass per chunk of shingles."""

    def __init__(self, params: NearDedupParams) -> None:
        self.params = params
        rng = np.random.default_rng(params.seed)
        self.a = rng.integers(1, int(PRIME), size=params.num_perm, dtype=np.uint64)
        self.b = rng.integers(0, int(PRIME), size=params.num_perm, dtype=np.uint64)

    def shingles(self, text: str) -> set[int]:
        p = self.params
        text = normalise(text, p.ignore_case, p.ignore_punctuation)
        units: Sequence[str] = text.split() if p.shingle == "words" else text
        joiner = " " if p.shingle == "words" else ""
        n = min(p.shingle_size, max(1, len(units)))
        return {zlib.crc32(joiner.join(units[i : i + n]).encode()) for i in range(max(1, len(units) - n + 1))}

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.params.num_perm), dtype=np.uint64)
        hashes: list[int] = []
        starts: list[int] = []
        first_doc = 0
        for index, text in enumerate(texts):
            starts.append(len(hashes))
            hashes.extend(self.shingles(text))
            if len(hashes) >= CHUNK or index == len(texts) - 1:
                values = np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
                permuted = (values[:, None] * self.a[None, :] + self.b[None, :]) % PRIME
                out[first_doc : index + 1] = np.minimum.reduceat(permuted, np.asarray(starts), axis=0)
                hashes, starts, first_doc = [], [], index + 1
        return out


@register("near_dedup")
class NearDedup(DatasetStep):
    Params: ClassVar[type[BaseModel]] = NearDedupParams

    def clusters(self, texts: Sequence[str]) -> tuple[list[int], list[float]]:
        """For each text, the index of its cluster's first member and its estimated similarity to it."""
        params: NearDedupParams = self.params  # type: ignore[assignment]
        if not texts:
            return [], []
        signatures = MinHasher(params).signatures(texts)
        bands, rows = optimal_bands(params.threshold, params.num_perm)
        parent = list(range(len(texts)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for band in range(bands):
            block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
            first: dict[bytes, int] = {}
            for index in range(len(texts)):
                key = block[index].tobytes()
                other = first.setdefault(key, index)
                if other == index:
                    continue
                root_a, root_b = find(other), find(index)
                if root_a == root_b:
                    continue
                similarity = float(np.mean(signatures[root_a] == signatures[index]))
                if similarity >= params.threshold:
                    parent[max(root_a, root_b)] = min(root_a, root_b)
        roots = [find(i) for i in range(len(texts))]
        similarity = [float(np.mean(signatures[r] == signatures[i])) for i, r in enumerate(roots)]
        return roots, similarity

    def decide(self, records: Sequence[Record]) -> Iterable[tuple[Record, str | None]]:
        params: NearDedupParams = self.params  # type: ignore[assignment]
        roots, similarity = self.clusters([record.body for record in records])
        sizes: dict[int, int] = {}
        for root in roots:
            sizes[root] = sizes.get(root, 0) + 1
        for index, record in enumerate(records):
            root = roots[index]
            if sizes[root] == 1:
                yield record, None
                continue
            record.meta["near_dup_cluster"] = records[root].id
            if root != index:
                record.meta["near_dup_similarity"] = round(similarity[index], 3)
            if params.action == "cluster" or root == index:
                if params.action == "cluster" and record.group is None:
                    record.group = f"near-dup:{records[root].id}"
                yield record, None
            else:
                record.meta["duplicate_of"] = records[root].id
                yield record, "near_duplicate"
