"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash + LSH).

The first occurrence in input order is kept; a dropped duplicate names the record it duplicates
in ``meta.duplicate_of``. Near-duplicates can instead be kept and clustered (``action: cluster``):
each record then carries ``meta.near_dup_cluster`` and, when it has no group yet, the cluster as
its ``group``, so the splitter keeps the cluster in one split.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from array import array
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import chain, islice
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from corpusmill.digests import DigestCounts, digest
from corpusmill.minhash import MinHasher, ShingleSettings, near_duplicate_clusters, normalise
from corpusmill.processes import die_with
from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import DatasetStep


class ExactDedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    ignore_case: bool = True
    ignore_punctuation: bool = True
    """Treat "Where is my parcel?" and "where is my parcel" as the same text."""


@register("exact_dedup")
class ExactDedup(DatasetStep):
    """Drops records whose normalised text repeats an earlier record's (keeps a hash per text)."""

    Params: ClassVar[type[BaseModel]] = ExactDedupParams

    def decide(self, records: Iterable[Record]) -> Iterable[tuple[Record, str | None]]:
        """Streams, a batch at a time: per distinct text, a 128-bit digest and the first id are kept
        (:class:`~corpusmill.digests.DigestCounts`, about 50 bytes with the id)."""
        params: ExactDedupParams = self.params  # type: ignore[assignment]
        seen = DigestCounts()
        first_ids = bytearray()  # the first record's id of each distinct text, in first-seen order
        id_ends = array("Q")
        stream = iter(records)
        while batch := list(islice(stream, DEDUP_BATCH)):
            texts = [normalise(r.body, params.ignore_case, params.ignore_punctuation) for r in batch]
            numbers, before = seen.add([digest(text) for text in texts])
            for record, number, repeats in zip(batch, numbers.tolist(), before.tolist(), strict=True):
                if not repeats:
                    first_ids.extend(record.id.encode())
                    id_ends.append(len(first_ids))
                    yield record, None
                else:
                    start = id_ends[number - 1] if number else 0
                    record.meta["duplicate_of"] = first_ids[start : id_ends[number]].decode()
                    yield record, "exact_duplicate"


DEDUP_BATCH = 10_000
"""Records exact dedup hashes and looks up at once."""


SIGNATURE_BATCH = 10_000
"""Records hashed per numpy pass while spooling."""


class NearDedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

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
    workers: int | None = Field(default=None, ge=1)
    """Processes computing signatures on inputs over one batch (default: every core); the
    decisions do not depend on it."""


@register("near_dedup")
class NearDedup(DatasetStep):
    """Drops (or clusters) near-duplicates by MinHash + LSH over word or character shingles."""

    Params: ClassVar[type[BaseModel]] = NearDedupParams

    def decide(self, records: Iterable[Record]) -> Iterable[tuple[Record, str | None]]:
        """Two passes: signatures while the records are spooled to disk, then decisions on re-reading.

        Only the signatures (``num_perm`` × 4 bytes) and ids stay in memory, not the records.
        """
        params: NearDedupParams = self.params  # type: ignore[assignment]
        settings = ShingleSettings(params.shingle, params.shingle_size, params.ignore_case, params.ignore_punctuation)
        hasher = MinHasher(settings, params.num_perm, params.seed)
        with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
            ids: list[str] = []

            def spooled_texts() -> Iterator[list[str]]:
                stream = iter(records)
                while batch := list(islice(stream, SIGNATURE_BATCH)):
                    spool.writelines(record.to_json() + "\n" for record in batch)
                    ids.extend(record.id for record in batch)
                    yield [record.body for record in batch]

            with tempfile.TemporaryFile() as signature_file:  # read back as one array: no concatenation copy
                for batch_signatures in self._signatures(hasher, spooled_texts()):
                    signature_file.write(batch_signatures.tobytes())
                if not ids:
                    return
                signature_file.seek(0)
                signatures = np.fromfile(signature_file, dtype=np.uint32).reshape(len(ids), params.num_perm)
            roots, similarity = near_duplicate_clusters(signatures, params.threshold)
            del signatures
            sizes = Counter(roots)
            spool.seek(0)
            for index, line in enumerate(spool):
                record = Record.from_json(line)
                root = roots[index]
                if sizes[root] == 1:
                    yield record, None
                    continue
                record.meta["near_dup_cluster"] = ids[root]
                if root != index:
                    record.meta["near_dup_similarity"] = round(similarity[index], 3)
                if params.action == "cluster" or root == index:
                    if params.action == "cluster" and record.group is None:
                        record.group = f"near-dup:{ids[root]}"
                    yield record, None
                else:
                    record.meta["duplicate_of"] = ids[root]
                    yield record, "near_duplicate"

    def _signatures(self, hasher: MinHasher, batches: Iterator[list[str]]) -> Iterator[np.ndarray]:
        """Each batch's signatures in order: in worker processes once there are two batches or more."""
        workers = self.params.workers or os.cpu_count() or 1  # type: ignore[attr-defined]
        head = list(islice(batches, 2))
        if len(head) < 2 or workers == 1:
            yield from map(hasher.signatures, chain(head, batches))
            return
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=die_with, initargs=(os.getpid(),)) as pool:
            pending: deque[Future[np.ndarray]] = deque()
            for texts in chain(head, batches):
                pending.append(pool.submit(hasher.signatures, texts))
                if len(pending) > 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
