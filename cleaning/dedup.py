"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash + LSH).

The first occurrence in input order is kept; a dropped duplicate names the record it duplicates
in ``meta.duplicate_of``. Near-duplicates can instead be kept and clustered (``action: cluster``):
each record then carries ``meta.near_dup_cluster`` and, when it has no group yet, the cluster as
its ``group``, so the splitter keeps the cluster in one split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from corpusmill.minhash import MinHasher, ShingleSettings, near_duplicate_clusters, normalise
from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import DatasetStep


class ExactDedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ignore_case: bool = True
    ignore_punctuation: bool = True
    """Treat "Where is my parcel?" and "where is my parcel" as the same text."""


@register("exact_dedup")
class ExactDedup(DatasetStep):
    Params: ClassVar[type[BaseModel]] = ExactDedupParams

    def decide(self, records: Iterable[Record]) -> Iterable[tuple[Record, str | None]]:
        """Streams: only a 32-byte hash per distinct text is kept."""
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


@register("near_dedup")
class NearDedup(DatasetStep):
    Params: ClassVar[type[BaseModel]] = NearDedupParams

    def decide(self, records: Iterable[Record]) -> Iterable[tuple[Record, str | None]]:
        params: NearDedupParams = self.params  # type: ignore[assignment]
        records = list(records)
        settings = ShingleSettings(params.shingle, params.shingle_size, params.ignore_case, params.ignore_punctuation)
        hasher = MinHasher(settings, params.num_perm, params.seed)
        roots, similarity = near_duplicate_clusters(hasher, [record.body for record in records], params.threshold)
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
