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
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

from corpusmill.errors import InputError
from corpusmill.registry import register
from corpusmill.reports import StepReport
from corpusmill.schema import Record
from corpusmill.steps import DropRecord, SplitKey, SplitKeys, Splitter, SplitterParams, id_hash
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


def previous_splits(release_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A previous release's (or split output's) split names, the :func:`id_hash` of every record
    in it, sorted, and the index of each one's split: 9 bytes a record, not a dict of strings."""
    manifest_path = release_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(str(manifest_path), f"not a readable release or split manifest: {exc}") from None
    hashes, splits = array("Q"), array("b")
    for index, info in enumerate(manifest["splits"].values()):
        with (release_dir / info["jsonl"]).open(encoding="utf-8") as handle:
            for line in handle:
                hashes.append(id_hash(json.loads(line)["id"]))
                splits.append(index)
    ids = np.frombuffer(hashes, dtype=np.uint64)
    order = np.argsort(ids, kind="stable")
    ids, split_index = ids[order], np.frombuffer(splits, dtype=np.int8)[order]
    last = np.ones(len(ids), dtype=bool)  # an id listed twice keeps its last split, as a dict would
    last[:-1] = ids[1:] != ids[:-1]
    return list(manifest["splits"]), ids[last], split_index[last]


def _majority_split(member_group: np.ndarray, old: np.ndarray, group_count: int) -> np.ndarray:
    """Each group's split: the one most of its previously placed records were in (ties: the
    split of its first such record), or -1 for a group with none."""
    split_of = np.full(group_count, -1, dtype=np.int64)
    placed = np.flatnonzero(old >= 0)
    if not len(placed):
        return split_of
    width = int(old.max()) + 1
    pairs, first, counts = np.unique(member_group[placed] * width + old[placed], return_index=True, return_counts=True)
    group, split = pairs // width, pairs % width
    chosen = _best_of_each_group(group, -counts, placed[first])
    split_of[group[chosen]] = split[chosen]
    return split_of


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
        return SplitKey(record.id, label, group)

    def card_section(self, report: StepReport) -> str:
        return render_split_report(report.report) if report.report else ""

    def assign(self, keys: SplitKeys, records: Callable[[], Iterator[Record]]) -> Sequence[str | DropRecord]:
        params: StratifiedParams = self.params  # type: ignore[assignment]
        names = list(params.ratios)
        member_group, sizes = keys.groups()
        multi = any(isinstance(label, tuple) for label in keys.labels)
        labelled = bool((keys.label >= 0).any())
        stratify = params.stratify == "on" or (params.stratify == "auto" and labelled)
        old = self._old_splits(keys, names)
        split_of = _majority_split(member_group, old, len(sizes))  # a group with old records stays

        rare: dict[str, int] = {}
        dropped = np.zeros(len(sizes), dtype=bool)
        if stratify and not multi:
            rare, dropped = self._single_label(keys, member_group, sizes, split_of)
        elif stratify:
            self._multi_label(keys, member_group, sizes, split_of)
        else:
            self._by_size(sizes, split_of)

        record_split = split_of.astype(np.int16)[member_group]
        kept = ~dropped[member_group]
        del member_group
        previously = (old >= 0) & kept
        moved, kept_from_previous = int((previously & (old != record_split)).sum()), int(previously.sum())
        del old, previously
        texts = ((r.id, r.body) for r, keep in zip(records(), kept, strict=True) if keep)
        self.report = split_report(
            keys.labels,
            keys.label[kept],
            record_split[kept],
            texts,
            names,
            params.ratios,
            rare,
            params.rare_classes,
            params.leakage,
            moved_from_previous=moved,
            kept_from_previous=kept_from_previous,
        )
        if params.leakage.fail_on_leakage and self.report["leakage"]["total"]:
            raise InputError(
                "split",
                f"leakage across splits: {self.report['leakage']['total']} train records "
                "duplicate validation/test records (see the split report); "
                "fail_on_leakage is set",
            )
        return [  # built after the leakage check, whose peak it would otherwise add to
            names[split] if keep else DropRecord("rare_class", {"label": _dominant(keys.label_of(index))})
            for index, (split, keep) in enumerate(zip(record_split.tolist(), kept.tolist(), strict=True))
        ]

    def _old_splits(self, keys: SplitKeys, names: list[str]) -> np.ndarray:
        """Each record's split index in the previous release, or -1 (not in it, or none given)."""
        params: StratifiedParams = self.params  # type: ignore[assignment]
        old = np.full(len(keys), -1, dtype=np.int16)
        if params.previous is None:
            return old
        previous_names, ids, split_index = previous_splits(params.previous)
        if not len(ids):
            return old
        position = np.minimum(np.searchsorted(ids, keys.id), len(ids) - 1)
        found = ids[position] == keys.id
        unknown = sorted({previous_names[i] for i in np.unique(split_index[position[found]])} - set(names))
        if unknown:
            raise InputError(str(params.previous), f"records in split(s) {', '.join(unknown)} that ratios do not name")
        mapping = np.array([names.index(name) if name in names else -1 for name in previous_names])
        old[found] = mapping[split_index[position[found]]]
        return old

    # -- strategies: each fills ``split_of`` (a split index per group, groups in hash order) ----

    def _single_label(
        self, keys: SplitKeys, member_group: np.ndarray, sizes: np.ndarray, split_of: np.ndarray
    ) -> tuple[dict[str, int], np.ndarray]:
        params: StratifiedParams = self.params  # type: ignore[assignment]
        ratios = params.ratios
        names = list(ratios)
        classes, group_class = _dominant_classes(keys, member_group, len(sizes))
        class_sizes = np.bincount(group_class, weights=sizes, minlength=len(classes)).astype(np.int64)
        class_groups = np.bincount(group_class, minlength=len(classes))
        rare = {
            c: int(n)
            for c, n, g in zip(classes, class_sizes.tolist(), class_groups.tolist(), strict=True)
            if n and c != NO_LABEL and (min(n * r for r in ratios.values()) < 1 or g < len(ratios))
        }
        if rare and params.rare_classes == "error":
            listing = ", ".join(f"{c} ({n})" for c, n in sorted(rare.items()))
            raise InputError("split", f"classes too small for every split (rare_classes: error): {listing}")
        is_rare = np.array([c in rare for c in classes], dtype=bool)
        open_rare = is_rare[group_class] & (split_of < 0)
        dropped = open_rare if params.rare_classes == "drop" else np.zeros(len(sizes), dtype=bool)
        if params.rare_classes != "drop":
            split_of[open_rare] = names.index("train")
        common = {c: int(n) for c, n, r in zip(classes, class_sizes.tolist(), is_rare, strict=True) if n and not r}
        targets = joint_targets(common, ratios)
        placed = split_of >= 0
        filled = np.bincount(
            group_class[placed] * len(names) + split_of[placed],
            weights=sizes[placed],
            minlength=len(classes) * len(names),
        ).reshape(len(classes), len(names))
        open_groups = np.flatnonzero(~placed & ~dropped)
        open_groups = open_groups[np.argsort(group_class[open_groups], kind="stable")]  # by class, hash order within
        bounds = np.searchsorted(group_class[open_groups], np.arange(len(classes) + 1))
        for code, label in enumerate(classes):
            members = open_groups[bounds[code] : bounds[code + 1]]
            if len(members):
                already = Counter({name: int(n) for name, n in zip(names, filled[code].tolist(), strict=True) if n})
                chosen = self._fill(sizes[members].tolist(), targets[label], already, names)
                split_of[members] = [names.index(name) for name in chosen]
        return rare, dropped

    @staticmethod
    def _fill(sizes: list[int], target: dict[str, int], filled: Counter[str], order: list[str]) -> list[str]:
        """Cut the hash-ordered groups (of these sizes) at the targets: train first, then the
        others in order. A split takes a group while that keeps it closer to its target than
        leaving it out; what remains goes to whichever split is furthest below target.
        Returns each group's split; ``filled`` counts what each split holds."""
        position = 0
        chosen = []
        for size in sizes:
            while position < len(order) - 1 and filled[order[position]] + size / 2 > target[order[position]]:
                position += 1
            split = order[position]
            if filled[split] + size / 2 > target[split]:
                split = max(order, key=lambda s: (target[s] - filled[s], -order.index(s)))
            chosen.append(split)
            filled[split] += size
        return chosen

    def _multi_label(self, keys: SplitKeys, member_group: np.ndarray, sizes: np.ndarray, split_of: np.ndarray) -> None:
        """Iterative stratification: the rarest label first; each of its groups goes where that
        label is most wanted, then where most records are wanted, then by seeded hash."""
        ratios: dict[str, float] = self.params.ratios  # type: ignore[attr-defined]
        splits = list(ratios)
        size = sizes.tolist()
        group_labels: list[Counter[str]] = [Counter() for _ in range(len(sizes))]
        for group, code in zip(member_group.tolist(), keys.label.tolist(), strict=True):
            if code >= 0:
                label = keys.labels[code]
                group_labels[group].update(label if isinstance(label, tuple) else [label])
        label_totals: Counter[str] = Counter()
        for counts in group_labels:
            label_totals.update(counts)
        total = len(keys)
        wanted_label = {s: {label: n * ratios[s] for label, n in label_totals.items()} for s in splits}
        wanted = {s: total * ratios[s] for s in splits}
        for group in np.flatnonzero(split_of >= 0).tolist():
            split = splits[split_of[group]]
            for label, n in group_labels[group].items():
                wanted_label[split][label] -= n
            wanted[split] -= size[group]
        remaining = set(np.flatnonzero(split_of < 0).tolist())
        by_label: dict[str, set[int]] = defaultdict(set)
        for group in remaining:
            for label in group_labels[group]:
                by_label[label].add(group)
        while remaining:
            live = {label: groups & remaining for label, groups in by_label.items() if groups & remaining}
            if not live:
                chosen = sorted(remaining)  # group numbers are in seeded hash order
            else:
                label = min(live, key=lambda lb: (len(live[lb]), _hash(self.seed, lb)))
                chosen = sorted(live[label], key=lambda g: (-size[g], g))
            for group in chosen:
                focus = label if live else None
                split = max(
                    splits, key=lambda s: (wanted_label[s].get(focus, 0) if focus else 0, wanted[s], -splits.index(s))
                )
                split_of[group] = splits.index(split)
                for lb, n in group_labels[group].items():
                    wanted_label[split][lb] -= n
                wanted[split] -= size[group]
                remaining.discard(group)

    def _by_size(self, sizes: np.ndarray, split_of: np.ndarray) -> None:
        """No labels: hash order, cut at the record targets."""
        ratios: dict[str, float] = self.params.ratios  # type: ignore[attr-defined]
        names = list(ratios)
        target = joint_targets({NO_LABEL: int(sizes.sum())}, ratios)[NO_LABEL]
        placed = split_of >= 0
        filled = Counter(
            {names[s]: int(n) for s, n in enumerate(np.bincount(split_of[placed], weights=sizes[placed])) if n}
        )
        open_groups = np.flatnonzero(~placed)
        chosen = self._fill(sizes[open_groups].tolist(), target, filled, names)
        split_of[open_groups] = [names.index(name) for name in chosen]


def _dominant(label: str | Sequence[str] | None) -> str:
    """The class a record counts for: its label, or a multi-label record's first label by name."""
    if label is None:
        return NO_LABEL
    return label if isinstance(label, str) else (sorted(label)[0] if label else NO_LABEL)


def _best_of_each_group(group: np.ndarray, *ranks: np.ndarray) -> np.ndarray:
    """For each distinct ``group``, the position of its entry that sorts first by ``ranks``."""
    order = np.lexsort((*reversed(ranks), group))
    return order[np.r_[True, group[order][1:] != group[order][:-1]]]


def _dominant_classes(keys: SplitKeys, member_group: np.ndarray, group_count: int) -> tuple[list[str], np.ndarray]:
    """The class names (sorted) and each group's class: its most frequent label (ties:
    alphabetical), by which it is stratified."""
    dominant = [_dominant(label) for label in keys.labels] + [NO_LABEL]
    classes = sorted(set(dominant))
    code_of = np.array([classes.index(name) for name in dominant], dtype=np.int64)
    record_class = code_of[keys.label]  # label -1 (none) picks the last entry, NO_LABEL
    width = len(classes)
    pairs, counts = np.unique(member_group * width + record_class, return_counts=True)
    group, label = pairs // width, pairs % width
    chosen = _best_of_each_group(group, -counts, label)
    group_class = np.empty(group_count, dtype=np.int64)
    group_class[group[chosen]] = label[chosen]
    return classes, group_class
