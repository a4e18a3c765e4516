"""The default splitter: stratified, group-aware, multi-label, stable across releases.

* **Units are groups.** Records sharing ``group`` (a conversation, a page and its FAQ pairs, a
  near-duplicate cluster, an augmentation parent) always land in one split; a group is stratified
  by its most frequent label.
* **Single-label**: per-class targets are rounded jointly (floors, then each class's remainder
  goes to the splits with the largest fractional shares that still have room overall), so every
  class is within ±1 record of ``n_class × ratio`` when groups are single records, and the split
  totals stay on target.
* **Hash order**: within a class, groups are ordered by a seeded hash of their key and cut at the
  targets (train first, then the other splits in config order). A group's position never depends
  on other groups, so adding records to a class moves at most a few old records per split
  boundary of that class (``--previous`` moves none).
* **Multi-label** (list labels): iterative stratification (Sechidis et al., 2011) over groups.
* **Rare classes** (a class expected to have fewer than one record in some split) follow
  ``rare_classes``: ``train`` (all of it in train), ``drop`` (rejected as ``rare_class``) or
  ``error``; the report lists each.
* **Previous release**: records whose id is in ``previous`` keep their old split; a new record in
  an old group follows its group; other new groups fill each class towards its targets.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from corpusmill.errors import InputError
from corpusmill.registry import register
from corpusmill.reports import StepReport
from corpusmill.schema import Record
from corpusmill.steps import DropRecord, SplitKey, Splitter, SplitterParams, interned_label
from splitting.report import LeakageSettings, render_split_report, split_report

NO_LABEL = "\0none"


class StratifiedParams(SplitterParams):
    """Everything the build config's ``split`` section (method ``stratified``) accepts."""

    stratify: Literal["auto", "on", "off"] = "auto"
    """``auto``: stratify whenever records have labels."""
    stratify_by: str = "label"
    """``label``, or ``meta.<key>`` to stratify by a value cleaning stored (``meta.lang``)."""
    group_by: str = "group"
    """``group``, ``source.uri``, ``parent_id`` or ``meta.<key>``: records sharing it stay together."""
    rare_classes: Literal["train", "drop", "error"] = "train"
    previous: Path | None = None
    """A previous release directory: its records keep their splits."""
    leakage: LeakageSettings = Field(default_factory=LeakageSettings)

    @field_validator("stratify_by", "group_by")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value in ("label", "group", "source.uri", "parent_id") or (value.startswith("meta.") and len(value) > 5):
            return value
        raise ValueError("use label, group, source.uri, parent_id or meta.<key>")


def _hash(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{key}".encode()).digest()


ROUNDING_SLACK = 1e-9
"""Float error forgiven when a share is cut to a whole number (1500 × 0.7 = 1049.9999999999998)."""


def _floor(value: float) -> int:
    """floor() that does not turn 1500 × 0.7 = 1049.9999999999998 into 1049."""
    return math.floor(value + ROUNDING_SLACK)


def joint_targets(class_sizes: dict[str, int], ratios: dict[str, float]) -> dict[str, dict[str, int]]:
    """Per-class, per-split record targets: each within one of ``n × ratio``, totals on target."""
    splits = list(ratios)
    total = sum(class_sizes.values())
    exact_totals = {s: total * r for s, r in ratios.items()}
    totals = {s: _floor(v) for s, v in exact_totals.items()}
    for s in sorted(splits, key=lambda s: -(exact_totals[s] - totals[s]))[: total - sum(totals.values())]:
        totals[s] += 1
    targets = {c: {s: _floor(n * ratios[s]) for s in splits} for c, n in class_sizes.items()}
    room = {s: totals[s] - sum(targets[c][s] for c in class_sizes) for s in splits}
    floors = {c: dict(t) for c, t in targets.items()}
    extras = {c: n - sum(targets[c].values()) for c, n in class_sizes.items()}
    fractions = {c: {s: n * ratios[s] - floors[c][s] for s in splits} for c, n in class_sizes.items()}
    # Classes needing the most extra records (in distinct splits) choose first, then the larger,
    # then by name; a split whose exact share is a whole number never takes an extra record.
    for c in sorted(class_sizes, key=lambda c: (-extras[c], -class_sizes[c], c)):
        fraction = fractions[c]
        open_splits = [s for s in splits if fraction[s] > ROUNDING_SLACK]
        for s in sorted(open_splits, key=lambda s: (room[s] <= 0, -fraction[s], splits.index(s)))[: extras[c]]:
            targets[c][s] += 1
            room[s] -= 1
    _repair_overfill(targets, floors, fractions, room, splits)
    return targets


def _repair_overfill(
    targets: dict[str, dict[str, int]],
    floors: dict[str, dict[str, int]],
    fractions: dict[str, dict[str, float]],
    room: dict[str, int],
    splits: list[str],
) -> None:
    """Where the greedy pass overfilled a split, move records out until every split total holds.

    A record of class ``c`` may move from split ``a`` to ``b`` when ``c`` was rounded up in ``a``
    and down in ``b`` (and its share of ``b`` is no whole number): ``c`` stays within one of its
    exact share in both. A direct move to a split
    with room is taken first; failing that, a chain of such moves through other splits (each
    passes one record on, so their totals stay), found breadth-first. Per-class shares rounded up
    or down with every split total rounded too always exist (controlled rounding), and the
    moves are the augmenting paths of that transportation problem, so one is always found.
    """

    def mover(a: str, b: str) -> str | None:
        return next(
            (
                c
                for c in sorted(targets)
                if targets[c][a] > floors[c][a] and targets[c][b] == floors[c][b] and fractions[c][b] > ROUNDING_SLACK
            ),
            None,
        )

    while any(room[s] < 0 for s in splits):
        path = _direct_move(splits, room, mover) or _chain_of_moves(splits, room, mover)
        if path is None:  # unreachable (see above); stop rather than loop
            return
        for c, a, b in path:
            targets[c][a] -= 1
            targets[c][b] += 1
        room[path[0][1]] += 1
        room[path[-1][2]] -= 1


Move = tuple[str, str, str]
"""``(class, from split, to split)``: one record of the class changes split."""


def _direct_move(splits: list[str], room: dict[str, int], mover: Callable[[str, str], str | None]) -> list[Move] | None:
    for over in (s for s in splits if room[s] < 0):
        for under in (s for s in splits if room[s] > 0):
            c = mover(over, under)
            if c is not None:
                return [(c, over, under)]
    return None


def _chain_of_moves(
    splits: list[str], room: dict[str, int], mover: Callable[[str, str], str | None]
) -> list[Move] | None:
    """The shortest chain of moves from an overfilled split to one with room (breadth-first)."""
    for over in (s for s in splits if room[s] < 0):
        came_from: dict[str, Move | None] = {over: None}
        frontier = [over]
        while frontier:
            reached = []
            for a in frontier:
                for b in splits:
                    if b in came_from:
                        continue
                    c = mover(a, b)
                    if c is None:
                        continue
                    came_from[b] = (c, a, b)
                    if room[b] > 0:
                        path = []
                        step = came_from[b]
                        while step is not None:
                            path.append(step)
                            step = came_from[step[1]]
                        return path[::-1]
                    reached.append(b)
            frontier = reached
    return None


def previous_splits(release_dir: Path) -> dict[str, str]:
    """id → split of every record in a previous release (from its JSONL mirror)."""
    manifest_path = release_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(str(manifest_path), f"not a readable release or split manifest: {exc}") from None
    out = {}
    for split, info in manifest["splits"].items():
        with (release_dir / info["jsonl"]).open(encoding="utf-8") as handle:
            for line in handle:
                out[json.loads(line)["id"]] = split
    return out


@register("stratified")
class StratifiedSplitter(Splitter):
    """Stratified, group-aware splits: every class within one record of its share."""

    Params: ClassVar[type[BaseModel]] = StratifiedParams

    def key(self, record: Record) -> SplitKey:
        """The record's group by ``group_by`` and its class by ``stratify_by``."""
        params: StratifiedParams = self.params  # type: ignore[assignment]
        field = params.group_by
        value: object = None
        if field == "group":
            value = record.group
        elif field == "source.uri":
            value = record.source.uri
        elif field == "parent_id":
            value = record.parent_id
        elif field.startswith("meta."):
            value = record.meta.get(field[5:])
        group = f"{field}={value}" if value not in (None, "") else f"id={record.id}"
        if params.stratify_by == "label":
            label = record.label
        else:
            stratum = record.meta.get(params.stratify_by.removeprefix("meta."))
            label = None if stratum is None else str(stratum)
        return SplitKey(record.id, interned_label(label), group)

    def card_section(self, report: StepReport) -> str:
        return render_split_report(report.report) if report.report else ""

    def assign(self, keys: Sequence[SplitKey], records: Callable[[], Iterator[Record]]) -> Sequence[str | DropRecord]:
        params: StratifiedParams = self.params  # type: ignore[assignment]
        ratios = params.ratios
        groups: dict[str, list[int]] = defaultdict(list)
        for index, key in enumerate(keys):
            groups[key.group].append(index)
        multi = any(isinstance(k.label, list) for k in keys)
        labelled = any(k.label is not None for k in keys)
        stratify = params.stratify == "on" or (params.stratify == "auto" and labelled)
        old = previous_splits(params.previous) if params.previous else {}

        split_of: dict[str, str] = {}
        for key, members in groups.items():  # a group with any old record stays where it was
            old_splits = [old[keys[i].id] for i in members if keys[i].id in old]
            if old_splits:
                split_of[key] = Counter(old_splits).most_common(1)[0][0]

        rare: dict[str, int] = {}
        dropped: set[str] = set()
        if stratify and not multi:
            rare, dropped = self._single_label(keys, groups, split_of)
        elif stratify:
            self._multi_label(keys, groups, split_of)
        else:
            self._by_size(groups, split_of)

        out: list[str | DropRecord] = [
            DropRecord("rare_class", {"label": _dominant(key.label)}) if key.group in dropped else split_of[key.group]
            for key in keys
        ]
        kept = [(k, s) for k, s in zip(keys, out, strict=True) if isinstance(s, str)]
        kept_bodies = (r.body for r, s in zip(records(), out, strict=True) if isinstance(s, str))
        self.report = split_report(
            [k for k, _ in kept],
            [s for _, s in kept],
            kept_bodies,
            list(ratios),
            ratios,
            rare,
            params.rare_classes,
            params.leakage,
            moved_from_previous=sum(1 for k, s in kept if k.id in old and old[k.id] != s),
            kept_from_previous=sum(1 for k, _ in kept if k.id in old),
        )
        if params.leakage.fail_on_leakage and self.report["leakage"]["total"]:
            raise InputError(
                "split",
                f"leakage across splits: {self.report['leakage']['total']} train records "
                "duplicate validation/test records (see the split report); "
                "fail_on_leakage is set",
            )
        return out

    # -- strategies ----------------------------------------------------------------------------

    def _single_label(
        self, keys: Sequence[SplitKey], groups: dict[str, list[int]], split_of: dict[str, str]
    ) -> tuple[dict[str, int], set[str]]:
        params: StratifiedParams = self.params  # type: ignore[assignment]
        ratios = params.ratios
        group_label = {key: _dominant_of(keys, members) for key, members in groups.items()}
        class_sizes: Counter[str] = Counter()
        class_groups: Counter[str] = Counter()
        for key, members in groups.items():
            class_sizes[group_label[key]] += len(members)
            class_groups[group_label[key]] += 1
        rare = {
            c: n
            for c, n in class_sizes.items()
            if c != NO_LABEL and (min(n * r for r in ratios.values()) < 1 or class_groups[c] < len(ratios))
        }
        if rare and params.rare_classes == "error":
            listing = ", ".join(f"{c} ({n})" for c, n in sorted(rare.items()))
            raise InputError("split", f"classes too small for every split (rare_classes: error): {listing}")
        dropped: set[str] = set()
        for key, label in group_label.items():
            if label in rare and key not in split_of:
                if params.rare_classes == "drop":
                    dropped.add(key)
                else:
                    split_of[key] = "train"
        common = {c: n for c, n in class_sizes.items() if c not in rare}
        targets = joint_targets(common, ratios)
        filled: dict[str, Counter[str]] = defaultdict(Counter)
        for key, split in split_of.items():
            filled[group_label[key]][split] += len(groups[key])
        by_class: dict[str, list[str]] = defaultdict(list)
        for key, label in group_label.items():
            if key not in split_of and key not in dropped:
                by_class[label].append(key)
        for label, keys in by_class.items():
            keys.sort(key=lambda k: _hash(self.seed, k))
            self._fill(keys, groups, targets[label], filled[label], split_of, list(ratios))
        return rare, dropped

    @staticmethod
    def _fill(
        keys: list[str],
        groups: dict[str, list[int]],
        target: dict[str, int],
        filled: Counter[str],
        split_of: dict[str, str],
        order: list[str],
    ) -> None:
        """Cut the hash-ordered groups at the targets: train first, then the others in order.

        A split takes a group while that keeps it closer to its target than leaving it out; what
        remains goes to whichever split is furthest below target.
        """
        position = 0
        for key in keys:
            size = len(groups[key])
            while position < len(order) - 1 and filled[order[position]] + size / 2 > target[order[position]]:
                position += 1
            split = order[position]
            if filled[split] + size / 2 > target[split]:
                split = max(order, key=lambda s: (target[s] - filled[s], -order.index(s)))
            split_of[key] = split
            filled[split] += size

    def _multi_label(self, keys: Sequence[SplitKey], groups: dict[str, list[int]], split_of: dict[str, str]) -> None:
        """Iterative stratification: the rarest label first; each of its groups goes where that
        label is most wanted, then where most records are wanted, then by seeded hash."""
        ratios: dict[str, float] = self.params.ratios  # type: ignore[attr-defined]
        splits = list(ratios)
        group_labels: dict[str, Counter[str]] = {}
        for key, members in groups.items():
            counts: Counter[str] = Counter()
            for i in members:
                label = keys[i].label
                counts.update(label if isinstance(label, list) else ([label] if label is not None else []))
            group_labels[key] = counts
        label_totals: Counter[str] = Counter()
        for counts in group_labels.values():
            label_totals.update(counts)
        total = len(keys)
        wanted_label = {s: {label: n * ratios[s] for label, n in label_totals.items()} for s in splits}
        wanted = {s: total * ratios[s] for s in splits}
        for key, split in split_of.items():
            for label, n in group_labels[key].items():
                wanted_label[split][label] -= n
            wanted[split] -= len(groups[key])
        remaining = {key for key in groups if key not in split_of}
        by_label: dict[str, set[str]] = defaultdict(set)
        for key in remaining:
            for label in group_labels[key]:
                by_label[label].add(key)
        while remaining:
            live = {label: keys & remaining for label, keys in by_label.items() if keys & remaining}
            if not live:
                chosen = sorted(remaining, key=lambda k: _hash(self.seed, k))
            else:
                label = min(live, key=lambda lb: (len(live[lb]), _hash(self.seed, lb)))
                chosen = sorted(live[label], key=lambda k: (-len(groups[k]), _hash(self.seed, k)))
            for key in chosen:
                counts = group_labels[key]
                focus = label if live else None
                split = max(
                    splits, key=lambda s: (wanted_label[s].get(focus, 0) if focus else 0, wanted[s], -splits.index(s))
                )
                split_of[key] = split
                for lb, n in counts.items():
                    wanted_label[split][lb] -= n
                wanted[split] -= len(groups[key])
                remaining.discard(key)

    def _by_size(self, groups: dict[str, list[int]], split_of: dict[str, str]) -> None:
        """No labels: hash order, cut at the record targets."""
        ratios: dict[str, float] = self.params.ratios  # type: ignore[attr-defined]
        total = sum(len(m) for m in groups.values())
        target = joint_targets({NO_LABEL: total}, ratios)[NO_LABEL]
        filled: Counter[str] = Counter()
        for key, split in split_of.items():
            filled[split] += len(groups[key])
        keys = sorted((k for k in groups if k not in split_of), key=lambda k: _hash(self.seed, k))
        self._fill(keys, groups, target, filled, split_of, list(ratios))


def _dominant(label: str | list[str] | None) -> str:
    if label is None:
        return NO_LABEL
    return label if isinstance(label, str) else (sorted(label)[0] if label else NO_LABEL)


def _dominant_of(keys: Sequence[SplitKey], members: list[int]) -> str:
    """A group's most frequent label (ties: alphabetical), by which it is stratified."""
    counts = Counter(_dominant(keys[i].label) for i in members)
    return min(counts, key=lambda label: (-counts[label], label))
