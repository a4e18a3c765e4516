"""The step protocol every stage package implements.

Modelled on datatrove's ``PipelineStep``: records flow through steps as generators, and each step
kind leaves its author exactly one small method:

* :class:`Reader` — ``read()`` yields records from one source;
* :class:`Filter` — ``keep(record)`` answers ``True``, ``False`` or ``(False, reason)``;
* :class:`Mapper` — ``transform(record)`` returns the changed record (or raises :class:`DropRecord`);
* :class:`DatasetStep` — ``decide(records)`` sees the whole dataset (dedup) and yields
  ``(record, None)`` to keep or ``(record, reason)`` to drop;
* :class:`Splitter` — ``assign(records)`` names the split of every record;
* :class:`Augmenter` — ``augment(record)`` yields new records derived from a training record.

Outputs are not a step kind: the executor writes each stage's records and rejects, and the release
writer the final dataset, so every step stays free of file handling.

The base class owns the rest: labelled counters (``total``, ``kept``, ``dropped_<reason>``), the
rejected records with their reasons (the executor writes them to ``rejects/<step>.jsonl``), timing,
and lazy set-up. Steps are picklable before and after :meth:`PipelineStep.setup`, so an executor
can ship them to worker processes and run them on shards.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from corpusmill.io import sha256_file
from corpusmill.schema import Record


class DropRecord(Exception):
    """Raised by a mapper (or reader) to reject the record at hand, like Scrapy's ``DropItem``."""

    def __init__(self, reason: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or {}


@dataclass
class Rejected:
    """One rejected record (or unparsable raw input) and why."""

    step: str
    reason: str
    record: dict[str, Any] | None = None
    raw: str | None = None
    where: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "reason": self.reason}
        for key in ("where", "raw", "record"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class StepStats:
    """Labelled counters of one step, mergeable across shards."""

    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def merge(self, other: StepStats) -> None:
        self.counts.update(other.counts)
        self.seconds += other.seconds

    @property
    def dropped_by_reason(self) -> dict[str, int]:
        return {
            key.removeprefix("dropped_"): value
            for key, value in sorted(self.counts.items())
            if key.startswith("dropped_")
        }

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())), "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepStats:
        return cls(Counter(data["counts"]), data["seconds"])


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PipelineStep(ABC):  # noqa: B024 (abstract methods live on the step kinds below)
    """Shared machinery; subclasses pick a kind below and implement its one method."""

    name: ClassVar[str] = ""
    """Registry name, set by :func:`corpusmill.registry.register`."""
    kind: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    lazy_attributes: ClassVar[tuple[str, ...]] = ()
    """Attributes :meth:`setup` fills with heavy resources; they are not pickled."""
    uses_model: ClassVar[bool] = False
    """Loads a model: distributed executors keep it in long-lived workers (and may give it a GPU)."""

    def __init__(self, **params: Any) -> None:
        self.params = self.Params(**params)
        self.label = self.name
        self.stats = StepStats()
        self.rejects: list[Rejected] = []
        self.report: dict[str, Any] = {}
        """What a whole-dataset step wants in the release card and manifest (the split report)."""
        self._ready = False

    def setup(self) -> None:  # noqa: B027 (optional hook)
        """Load heavy resources (models, word lists); runs once per process, on first use."""

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for attr in self.lazy_attributes:
            state.pop(attr, None)
        state["_ready"] = False
        return state

    def reset(self) -> None:
        """Start fresh counters and an empty reject list (per shard)."""
        self.stats = StepStats()
        self.rejects = []

    def drop(self, record: Record | None, reason: str, **extra: Any) -> None:
        """Count a rejection and keep the record with its reason."""
        self.stats.counts["dropped"] += 1
        self.stats.counts[f"dropped_{reason}"] += 1
        self.rejects.append(
            Rejected(
                step=self.label,
                reason=reason,
                record=record.to_dict() if record is not None else None,
                **extra,
            )
        )

    def _timed(self, records: Iterator[Record]) -> Iterator[Record]:
        """Add the time spent inside this step (not its upstream) to its stats."""
        while True:
            start = time.perf_counter()
            try:
                record = next(records)
            except StopIteration:
                self.stats.seconds += time.perf_counter() - start
                return
            self.stats.seconds += time.perf_counter() - start
            yield record


class RecordStep(PipelineStep):
    """A step that looks at one record at a time; executors shard these freely."""

    scope: ClassVar[Literal["record", "dataset"]] = "record"

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        self.ensure_setup()
        return self._timed(self._apply_all(records))

    @abstractmethod
    def _apply_all(self, records: Iterable[Record]) -> Iterator[Record]: ...


class Filter(RecordStep):
    kind = "clean"

    @abstractmethod
    def keep(self, record: Record) -> bool | tuple[bool, str]:
        """``True`` to keep; ``False`` or ``(False, reason)`` to drop."""

    def _apply_all(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.stats.counts["total"] += 1
            verdict = self.keep(record)
            keep, reason = verdict if isinstance(verdict, tuple) else (verdict, self.name)
            if keep:
                self.stats.counts["kept"] += 1
                yield record
            else:
                self.drop(record, reason)


class Mapper(RecordStep):
    kind = "clean"

    @abstractmethod
    def transform(self, record: Record) -> Record:
        """Return the changed record; raise :class:`DropRecord` to reject it."""

    def _apply_all(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.stats.counts["total"] += 1
            try:
                out = self.transform(record)
            except DropRecord as exc:
                self.drop(record, exc.reason, detail=exc.detail)
                continue
            self.stats.counts["kept"] += 1
            yield out


class DatasetStep(PipelineStep):
    """A step that must see every record (deduplication); executors never shard it.

    ``decide`` gets the whole stream in one process; a step that can decide as records go by
    (exact dedup keeps only hashes) streams, one that needs everything first materialises it.
    """

    kind = "clean"
    scope: ClassVar[Literal["record", "dataset"]] = "dataset"

    @abstractmethod
    def decide(self, records: Iterable[Record]) -> Iterable[tuple[Record, str | None]]:
        """Yield every record once, in order, with ``None`` to keep it or a reason to drop it."""

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        self.ensure_setup()
        return self._timed(self._decide_all(records))

    def _decide_all(self, records: Iterable[Record]) -> Iterator[Record]:
        for record, reason in self.decide(records):
            self.stats.counts["total"] += 1
            if reason is None:
                self.stats.counts["kept"] += 1
                yield record
            else:
                self.drop(record, reason)


class SplitterParams(BaseModel):
    """What every splitter takes: named splits and their ratios."""

    model_config = ConfigDict(extra="forbid")

    ratios: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}

    @field_validator("ratios")
    @classmethod
    def _check_ratios(cls, ratios: dict[str, float]) -> dict[str, float]:
        if "train" not in ratios:
            raise ValueError("must name a 'train' split")
        bad = [name for name, value in ratios.items() if not 0 < value <= 1]
        if bad:
            raise ValueError(f"each ratio must be in (0, 1]: {', '.join(bad)}")
        if abs(sum(ratios.values()) - 1.0) > 1e-6:
            raise ValueError(f"must sum to 1 (got {sum(ratios.values()):g})")
        return ratios


class Splitter(PipelineStep):
    """Assigns every record to a split; sees the whole dataset."""

    kind = "split"
    Params: ClassVar[type[BaseModel]] = SplitterParams

    def __init__(self, seed: int = 0, **params: Any) -> None:
        super().__init__(**params)
        self.seed = seed

    @property
    def split_names(self) -> list[str]:
        return list(self.params.ratios)  # type: ignore[attr-defined]

    @abstractmethod
    def assign(self, records: Sequence[Record]) -> Sequence[str | DropRecord]:
        """The split name of each record, in order, or a :class:`DropRecord` to leave it out."""

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        self.ensure_setup()
        return self._timed(self._assign_all(list(records)))

    def _assign_all(self, records: Sequence[Record]) -> Iterator[Record]:
        for record, split in zip(records, self.assign(records), strict=True):
            self.stats.counts["total"] += 1
            if isinstance(split, DropRecord):
                self.drop(record, split.reason, detail=split.detail)
                continue
            self.stats.counts["kept"] += 1
            self.stats.counts[f"split_{split}"] += 1
            yield record.model_copy(update={"split": split})


class AugmenterParams(BaseModel):
    """What every augmenter takes: which splits to augment (train only unless forced)."""

    model_config = ConfigDict(extra="forbid")

    splits: list[str] = ["train"]
    force: bool = False
    """Augmenting validation or test inflates their scores; allowed only with ``force`` (and the
    release card says so)."""

    @model_validator(mode="after")
    def _train_only(self) -> AugmenterParams:
        others = [s for s in self.splits if s != "train"]
        if others and not self.force:
            raise ValueError(
                f"augmenting {', '.join(others)} would leak augmented copies into evaluation; set force: true "
                "to do it anyway"
            )
        return self


class Augmenter(RecordStep):
    """Adds records derived from training records; every input record passes through unchanged.

    Records without a split (``corpusmill augment`` on unsplit data) count as train. Derived
    outputs an augmenter discards (a quality filter) are not input records: they are counted as
    ``discarded_<reason>``, never as rejects.
    """

    kind = "augment"
    Params: ClassVar[type[BaseModel]] = AugmenterParams

    def __init__(self, seed: int = 0, **params: Any) -> None:
        super().__init__(**params)
        self.seed = seed

    @abstractmethod
    def augment(self, record: Record) -> Iterable[Record]:
        """New records made from ``record`` (each with ``parent_id`` and ``augmentation`` set)."""

    def eligible(self, record: Record) -> bool:
        return (record.split or "train") in self.params.splits  # type: ignore[attr-defined]

    def discard(self, reason: str) -> None:
        self.stats.counts[f"discarded_{reason}"] += 1

    batch_records: ClassVar[int] = 1
    """Records handed to :meth:`augment_batch` at once (model-based augmenters batch across records)."""

    def augment_batch(self, records: list[Record]) -> list[list[Record]]:
        """The derived records of each record; override to share work across records."""
        out: list[list[Record]] = []
        for record in records:
            try:
                out.append(list(self.augment(record)))
            except DropRecord as exc:
                self.stats.counts[f"skipped_{exc.reason}"] += 1
                out.append([])
        return out

    def _apply_all(self, records: Iterable[Record]) -> Iterator[Record]:
        buffer: list[Record] = []
        for record in records:
            buffer.append(record)
            if len(buffer) >= self.batch_records:
                yield from self._flush(buffer)
                buffer = []
        yield from self._flush(buffer)

    def _flush(self, buffer: list[Record]) -> Iterator[Record]:
        eligible = [i for i, r in enumerate(buffer) if self.eligible(r) and r.parent_id is None]
        derived = dict(zip(eligible, self.augment_batch([buffer[i] for i in eligible]), strict=True))
        for index, record in enumerate(buffer):
            self.stats.counts["total"] += 1
            self.stats.counts["kept"] += 1
            yield record
            for child in derived.get(index, []):
                self.stats.counts["added"] += 1
                yield child


class Reader(PipelineStep):
    """Yields records from one source; ``on_error`` decides whether bad input stops the build."""

    kind = "source"

    def __init__(
        self,
        dataset: str,
        on_error: Literal["raise", "skip"] = "raise",
        uri: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.dataset = dataset
        self.on_error = on_error
        self.uri = uri
        """How records name their origin (the path as the config wrote it, not this machine's)."""

    @abstractmethod
    def read(self) -> Iterator[Record]:
        """Yield records; raise :class:`corpusmill.errors.InputError` naming ``FILE:LINE``."""

    def run(self) -> Iterator[Record]:
        self.ensure_setup()
        return self._timed(self._count(self.read()))

    def fingerprint(self) -> str:
        """A digest of everything this source reads, so a changed input reruns the build."""
        path = getattr(self.params, "path", None)
        digest = hashlib.sha256()
        if path is not None:
            path = Path(path)
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for file in files:
                digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
                digest.update(sha256_file(file).encode() if file.exists() else b"missing")
        return digest.hexdigest()

    def _count(self, records: Iterator[Record]) -> Iterator[Record]:
        for record in records:
            self.stats.counts["total"] += 1
            self.stats.counts["kept"] += 1
            yield record

    def skip_bad_input(self, where: str, reason: str, raw: str) -> None:
        """Count an unreadable line or row as rejected (only under ``on_error: skip``)."""
        self.stats.counts["total"] += 1
        self.drop(None, reason, where=where, raw=raw.rstrip("\r\n")[:2000])
