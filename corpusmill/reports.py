"""What a build says about itself: each step's typed counters, each checkpoint, the whole build.

Plain data classes with no dependency on the rest of corpusmill: the executor fills them, the
release writer and the card read them, and nothing here imports either (no import cycle).
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corpusmill.schema import Record


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured markdown table (the card's and the steps' own sections)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class StepStats:
    """One step's counters, mergeable across shards.

    ``dropped`` counts input records the step rejected (each is in its rejects file);
    ``discarded`` counts outputs the step made and threw away (augmented variants a quality filter
    refused: never input records); ``added`` counts records the step created; ``metrics`` holds
    anything else the step wants to report (``sentences_translated``, ``redacted.email``).
    """

    total: int = 0
    kept: int = 0
    added: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    discarded: Counter[str] = field(default_factory=Counter)
    metrics: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def merge(self, other: StepStats) -> None:
        self.total += other.total
        self.kept += other.kept
        self.added += other.added
        self.dropped.update(other.dropped)
        self.discarded.update(other.discarded)
        self.metrics.update(other.metrics)
        self.seconds += other.seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "kept": self.kept,
            "added": self.added,
            "dropped": dict(sorted(self.dropped.items())),
            "discarded": dict(sorted(self.discarded.items())),
            "metrics": dict(sorted(self.metrics.items())),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepStats:
        return cls(
            data["total"],
            data["kept"],
            data["added"],
            Counter(data["dropped"]),
            Counter(data["discarded"]),
            Counter(data["metrics"]),
            data["seconds"],
        )


@dataclass
class StepReport:
    """One step's outcome in a build: its counters, plus what a whole-dataset step reports (the
    split report) and the card section the step rendered for itself."""

    label: str
    name: str
    kind: str
    stats: StepStats
    report: dict[str, Any] = field(default_factory=dict)
    card_section: str = ""

    @property
    def rejects_file(self) -> str:
        return f"{self.label}.jsonl"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "name": self.name,
            "kind": self.kind,
            **self.stats.to_dict(),
            "report": self.report,
            "card_section": self.card_section,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepReport:
        return cls(
            data["label"], data["name"], data["kind"], StepStats.from_dict(data), data["report"], data["card_section"]
        )


@dataclass
class SegmentResult:
    """One checkpointed run of steps: its output (``records.jsonl``) and each step's report."""

    name: str
    key: str
    records_out: int
    output_sha256: str
    steps: list[StepReport]
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "records_out": self.records_out,
            "output_sha256": self.output_sha256,
            "steps": [step.to_dict() for step in self.steps],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], resumed: bool = False) -> SegmentResult:
        steps = [StepReport.from_dict(step) for step in data["steps"]]
        return cls(data["name"], data["key"], data["records_out"], data["output_sha256"], steps, resumed)


@dataclass
class BuildResult:
    release_dir: Path
    segments: list[SegmentResult] = field(default_factory=list)
    up_to_date: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> list[StepReport]:
        return [step for segment in self.segments for step in segment.steps]


@dataclass
class SplitSummary:
    """What the card and manifest say about one split of a release."""

    name: str
    records: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    chars: array[int] = field(default_factory=lambda: array("I"))
    words: array[int] = field(default_factory=lambda: array("I"))
    """Per record, 4 bytes each (a list of ints took 8 to 36)."""
    chat: int = 0
    augmented: int = 0
    datasets: Counter[str] = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)
    nbytes: int = 0
    """In-memory (Arrow) size of the split, as the card's ``num_bytes`` wants it."""
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The split's first ``text`` and first ``chat`` record, for the card."""

    def add(self, record: Record) -> None:
        self.records += 1
        labels = record.label if isinstance(record.label, list) else [record.label]
        self.labels.update(label for label in labels if label is not None)
        body = record.body
        self.chars.append(len(body))
        self.words.append(len(body.split()))
        self.chat += record.messages is not None
        shape = "text" if record.messages is None else "chat"
        if shape not in self.examples:
            self.examples[shape] = record.to_dict()
        self.augmented += record.parent_id is not None
        self.datasets[record.source.dataset] += 1
