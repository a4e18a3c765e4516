"""Seeded, group-aware random split with exact target counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import DropRecord, SplitKeys, Splitter


def target_counts(total: int, ratios: dict[str, float]) -> dict[str, int]:
    """Split ``total`` by ``ratios`` into whole numbers that add up (largest remainder)."""
    raw = {name: total * ratio for name, ratio in ratios.items()}
    counts = {name: int(value + 1e-9) for name, value in raw.items()}
    by_remainder = sorted(raw, key=lambda name: (-(raw[name] - counts[name]), list(ratios).index(name)))
    for name in by_remainder[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


@register("random")
class RandomSplitter(Splitter):
    """Shuffles groups by a seeded hash and fills each split up to its share of records.

    A group's position depends only on the seed and its key, so adding records moves few others.
    """

    def assign(self, keys: SplitKeys, records: Callable[[], Iterator[Record]]) -> Sequence[str | DropRecord]:
        member_group, sizes = keys.groups()  # groups numbered in their seeded hash order
        ratios: dict[str, float] = self.params.ratios  # type: ignore[attr-defined]
        targets = target_counts(len(keys), ratios)
        filled = dict.fromkeys(ratios, 0)
        split_of = []
        for size in sizes.tolist():
            # The split furthest below its target takes the group (ties: first named split).
            name = max(ratios, key=lambda n: (targets[n] - filled[n]) / max(targets[n], 1))
            split_of.append(name)
            filled[name] += size
        return [split_of[g] for g in member_group.tolist()]
