"""The step protocol every stage package implements.

Modelled on datatrove's ``PipelineStep``: records flow through steps as generators, and each step
kind leaves its author exactly one small method:

* :class:`Reader` — ``read()`` yields records from one source;
* :class:`Filter` — ``keep(record)`` answers ``True``, ``False`` or ``(False, reason)``; a
  :class:`ScoreFilter` splits that into ``score(record)`` and ``decide(scores)``;
* :class:`Mapper` — ``transform(record)`` returns the changed record (or raises :class:`DropRecord`);
* :class:`DatasetStep` — ``decide(records)`` sees the whole dataset (dedup) and yields
  ``(record, None)`` to keep or ``(record, reason)`` to drop;
* :class:`Splitter` — ``assign(records)`` names the split of every record;
* :class:`Augmenter` — ``augment(record)`` yields new records derived from a training record.

Outputs are not a step kind: the executor writes each stage's records and rejects, and the release
writer the final dataset, so every step stays free of file handling.

The base class owns the rest: typed counters (:class:`~corpusmill.reports.StepStats`: ``total``,
``kept``, ``dropped`` by reason), the rejected records with their reasons (streamed to the
executor's reject writer, ``rejects/<step>.jsonl``), timing, and lazy set-up. A step that has more
to say in the release card renders it itself (:meth:`PipelineStep.card_section`). Steps are
picklable before and after :meth:`PipelineStep.setup`, so an executor
can ship them to worker processes and run them on shards.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from corpusmill.io import sha256_file
from corpusmill.reports import StepReport, StepStats
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


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class PipelineStep(ABC):  # noqa: B024 (abstract methods live on the step kinds below)
    """Shared machinery; subclasses pick a kind below and implement its one method."""

    name: ClassVar[str] = ""
    """Registry name, set by :func:`corpusmill.registry.register`."""
    kind: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    lazy_attributes: ClassVar[tuple[str, ...]] = ()
    """Attributes :meth:`setup` fills with heavy resources; they are not pickled."""
    progress_metric: ClassVar[str | None] = None
    """A metric the progress bar shows as a rate (back-translation: ``sentences_translated``)."""
    uses_model: ClassVar[bool] = False
    """Loads a model: distributed executors keep it in long-lived workers (and may give it a GPU)."""

    def __init__(self, **params: Any) -> None:
        self.params = self.Params(**params)
        self.label = self.name
        self.stats = StepStats()
        self.rejects: list[Rejected] = []
        self.reject_sink: Callable[[Rejected], None] | None = None
        """Where rejects go as they happen (the executor's reject writer); kept in ``rejects`` without one."""
        self.report: dict[str, Any] = {}
        """What a whole-dataset step reports in the manifest (the split report)."""
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
        state["reject_sink"] = None  # the parent's writer stays in the parent
        return state

    def spec(self) -> dict[str, Any]:
        """What decides this step's output besides its input: a checkpoint is reused only while
        this stays the same."""
        return {"step": self.name, "label": self.label, "params": self.params.model_dump(mode="json")}

    def card_section(self, report: StepReport) -> str:
        """Markdown for the release card about this step's outcome (``report`` holds its merged
        counters); empty when the step-table row says it all."""
        return ""

    def reset(self) -> None:
        """Start fresh counters and an empty reject list (per shard)."""
        self.stats = StepStats()
        self.rejects = []

    def drop(self, record: Record | None, reason: str, **extra: Any) -> None:
        """Count a rejection and hand the record with its reason to the reject writer."""
        self.stats.dropped[reason] += 1
        record_data = record.to_dict() if record is not None else None
        rejected = Rejected(step=self.label, reason=reason, record=record_data, **extra)
        if self.reject_sink is None:
            self.rejects.append(rejected)
        else:
            self.reject_sink(rejected)

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
            self.stats.total += 1
            verdict = self.keep(record)
            keep, reason = verdict if isinstance(verdict, tuple) else (verdict, self.name)
            if keep:
                self.stats.kept += 1
                yield record
            else:
                self.drop(record, reason)


class ScoreFilter(Filter):
    """A filter that scores, then decides (NeMo-Curator's ``score_document`` / ``keep_document``).

    Every score lands in ``meta[<step name>]`` whether the record is kept or not, so a rejected
    record carries all of its scores and a threshold can be re-applied later without rescoring.
    """

    @abstractmethod
    def score(self, record: Record) -> dict[str, float]:
        """Every measurement the decision looks at."""

    @abstractmethod
    def decide(self, scores: dict[str, float]) -> str | None:
        """The reason to drop a record with these scores, or ``None`` to keep it."""

    def keep(self, record: Record) -> bool | tuple[bool, str]:
        scores = self.score(record)
        record.meta[self.name] = scores
        reason = self.decide(scores)
        return True if reason is None else (False, reason)


class Mapper(RecordStep):
    kind = "clean"

    @abstractmethod
    def transform(self, record: Record) -> Record:
        """Return the changed record; raise :class:`DropRecord` to reject it."""

    def _apply_all(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.stats.total += 1
            try:
                out = self.transform(record)
            except DropRecord as exc:
                self.drop(record, exc.reason, detail=exc.detail)
                continue
            self.stats.kept += 1
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
            self.stats.total += 1
            if reason is None:
                self.stats.kept += 1
                yield record
            else:
                self.drop(record, reason)


class SplitterParams(BaseModel):
    """What every splitter takes: named splits and their ratios."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

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


@dataclass(slots=True)
class SplitKey:
    """What a splitter decides on for one record — never its text."""

    id: str
    label: str | list[str] | None
    group: str


def id_hash(record_id: str) -> int:
    """A record id as 64 bits: what a splitter keeps to find the record in a previous release (two
    ids sharing one, about 1 in 10^8 among a million, would give a new record an old one's split)."""
    return int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=8).digest(), "little")


class SplitKeys:
    """Every record's :class:`SplitKey`, held as three columns of fixed-size numbers (20 bytes a
    record where the key objects and their strings took about 200), so that a splitter over
    millions of records holds tens of megabytes while the records wait on disk.

    * ``group``: the first 8 bytes of ``sha256(f"{seed}\\0{group}")``, big-endian — both the
      seeded order in which splitters cut groups and the group's identity (two groups sharing 64
      bits, about one pair in 10^8 among a million groups, are kept together; nothing else changes);
    * ``label``: the index of the record's label in :attr:`labels` (distinct labels in first-seen
      order, a multi-label record's list as one tuple); -1 for none;
    * ``id``: :func:`id_hash` of the record id.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.labels: list[str | tuple[str, ...]] = []
        self._label_index: dict[str | tuple[str, ...], int] = {}
        self._group, self._label, self._id = array("Q"), array("i"), array("Q")

    def append(self, key: SplitKey) -> None:
        label = key.label
        if label is None:
            index = -1
        else:
            value = tuple(label) if isinstance(label, list) else label
            index = self._label_index.get(value, -1)
            if index < 0:
                index = self._label_index[value] = len(self.labels)
                self.labels.append(value)
        digest = hashlib.sha256(f"{self.seed}\0{key.group}".encode()).digest()
        self._group.append(int.from_bytes(digest[:8], "big"))
        self._label.append(index)
        self._id.append(id_hash(key.id))

    def __len__(self) -> int:
        return len(self._label)

    @property
    def group(self) -> np.ndarray:
        return np.frombuffer(self._group, dtype=np.uint64)

    @property
    def label(self) -> np.ndarray:
        return np.frombuffer(self._label, dtype=np.int32)

    @property
    def id(self) -> np.ndarray:
        return np.frombuffer(self._id, dtype=np.uint64)

    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Each record's group number, the groups numbered in hash order, and each group's size."""
        _, member_group, sizes = np.unique(self.group, return_inverse=True, return_counts=True)
        return member_group.astype(np.int64, copy=False), sizes

    def label_of(self, index: int) -> str | list[str] | None:
        """Record ``index``'s label as :class:`SplitKey` had it."""
        code = int(self._label[index])
        if code < 0:
            return None
        label = self.labels[code]
        return list(label) if isinstance(label, tuple) else label


SPOOL_BATCH = 10_000
"""Records a splitter keys at once while spooling them."""


class Splitter(PipelineStep):
    """Assigns every record to a split; sees the whole dataset, in two passes: a key per record
    (:meth:`key`) while the records are spooled to disk, then the records again, each with its
    split. Memory grows with the keys, not with the records."""

    kind = "split"
    Params: ClassVar[type[BaseModel]] = SplitterParams

    def __init__(self, seed: int = 0, **params: Any) -> None:
        super().__init__(**params)
        self.seed = seed

    @property
    def split_names(self) -> list[str]:
        return list(self.params.ratios)  # type: ignore[attr-defined]

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "seed": self.seed}

    def key(self, record: Record) -> SplitKey:
        """The record's id, label and group."""
        return SplitKey(record.id, record.label, record.group_key)

    @abstractmethod
    def assign(self, keys: SplitKeys, records: Callable[[], Iterator[Record]]) -> Sequence[str | DropRecord]:
        """The split name of each key's record, in order, or a :class:`DropRecord` to leave it out.

        ``records()`` streams the records again, in the same order, for a splitter that must
        read text (a leakage check); most never call it."""

    def keys_of(self, records: Iterable[Record]) -> SplitKeys:
        keys = SplitKeys(self.seed)
        for record in records:
            keys.append(self.key(record))
        return keys

    def split_records(self, records: Iterable[Record]) -> list[str | DropRecord]:
        """:meth:`assign` over records held in memory (small inputs, tests)."""
        held = list(records)
        return list(self.assign(self.keys_of(held), lambda: iter(held)))

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        self.ensure_setup()
        return self._timed(self._assign_all(records))

    def _assign_all(self, records: Iterable[Record]) -> Iterator[Record]:
        with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
            keys = SplitKeys(self.seed)
            stream = iter(records)
            while batch := list(islice(stream, SPOOL_BATCH)):
                spool.writelines(record.to_json() + "\n" for record in batch)
                for record in batch:
                    keys.append(self.key(record))
            spool.flush()

            def spooled() -> Iterator[Record]:
                spool.seek(0)
                return (Record.from_json(line) for line in spool)

            splits = self.assign(keys, spooled)
            del keys
            for record, split in zip(spooled(), splits, strict=True):
                self.stats.total += 1
                if isinstance(split, DropRecord):
                    self.drop(record, split.reason, detail=split.detail)
                    continue
                self.stats.kept += 1
                self.stats.metrics[f"split.{split}"] += 1
                record.split = split
                yield record


class AugmenterParams(BaseModel):
    """What every augmenter takes: which splits to augment (train only unless forced)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

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

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "seed": self.seed}

    def eligible(self, record: Record) -> bool:
        return (record.split or "train") in self.params.splits  # type: ignore[attr-defined]

    def discard(
        self, reason: str, parent: Record | None = None, texts: list[str] | None = None, similarity: float | None = None
    ) -> None:
        """Count a variant the augmenter will not emit; given the ``parent`` it came from, also
        keep it in the parent's ``meta[<step>]["discarded"]`` (its texts, reason and score), so the
        release shows what the quality filter threw away beside what it kept."""
        self.stats.discarded[reason] += 1
        if parent is not None:
            kept = parent.meta.setdefault(self.name, {})
            kept.setdefault("discarded", []).append({"reason": reason, "texts": texts or [], "similarity": similarity})

    def card_section(self, report: StepReport) -> str:
        """How many records this augmenter added, what it discarded, and a warning when it was
        forced onto validation or test."""
        stats = report.stats
        discarded = ", ".join(f"{reason}: {n}" for reason, n in sorted(stats.discarded.items())) or "none"
        lines = [
            f"## Augmentation: `{report.label}`",
            f"Added {stats.added} records derived from {', '.join(self.params.splits)} records; "  # type: ignore[attr-defined]
            f"variants discarded: {discarded}.",
        ]
        others = [s for s in self.params.splits if s != "train"]  # type: ignore[attr-defined]
        if others:
            lines.append(
                f"**Warning:** `{report.label}` also augmented {', '.join(others)} records (forced); scores on "
                "those splits are not comparable to an unaugmented release."
            )
        return "\n\n".join(lines)

    batch_records: ClassVar[int] = 1
    """Records handed to :meth:`augment_batch` at once (model-based augmenters batch across records)."""

    def augment_batch(self, records: list[Record]) -> list[list[Record]]:
        """The derived records of each record; override to share work across records."""
        out: list[list[Record]] = []
        for record in records:
            try:
                out.append(list(self.augment(record)))
            except DropRecord as exc:
                self.stats.metrics[f"skipped.{exc.reason}"] += 1
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
            self.stats.total += 1
            self.stats.kept += 1
            yield record
            for child in derived.get(index, []):
                self.stats.added += 1
                yield child


LINE_BATCH = 10_000
"""Records a reader hands the executor at once as JSON lines."""


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

    def run_lines(self) -> Iterator[list[tuple[str, str]]]:
        """Batches of ``(id, JSON line)`` of the records, as the executor writes them; counted
        and timed like :meth:`run`, a batch at a time."""
        self.ensure_setup()
        return self._timed(self._count_batches(self.line_batches()))  # type: ignore[arg-type]

    def line_batches(self) -> Iterator[list[tuple[str, str]]]:
        """:meth:`read`'s records serialised, :data:`LINE_BATCH` at a time. A reader that can
        write a valid record's line directly, without building the model and dumping it again,
        overrides this (plain CSV and JSONL rows do); each line must equal ``record.to_json()``."""
        stream = iter(self.read())
        while batch := [(record.id, record.to_json()) for record in islice(stream, LINE_BATCH)]:
            yield batch

    def _count_batches(self, batches: Iterator[list[Any]]) -> Iterator[list[Any]]:
        for batch in batches:
            self.stats.total += len(batch)
            self.stats.kept += len(batch)
            yield batch

    def spec(self) -> dict[str, Any]:
        params = self.params.model_dump(mode="json")
        params.pop("path", None)  # this machine's resolved path: ``uri`` and the input digest stand for it
        return {
            "step": self.name,
            "label": self.label,
            "params": params,
            "uri": self.uri,
            "dataset": self.dataset,
            "on_error": self.on_error,
            "input": self.fingerprint(),
        }

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
            self.stats.total += 1
            self.stats.kept += 1
            yield record

    def skip_bad_input(self, where: str, reason: str, raw: str) -> None:
        """Count an input item that is not a record — an unreadable line or row (under
        ``on_error: skip``), a file a directory reader cannot read — as rejected with its reason."""
        self.stats.total += 1
        self.drop(None, reason, where=where, raw=raw.rstrip("\r\n")[:2000])
