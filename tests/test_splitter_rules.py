"""The stratified splitter's placement rules, each on a case small enough to work out by hand.

The Banking77 tests in ``test_splitting.py`` check the outcomes (every class within one record,
groups together); these pin the rules that decide *which* record goes where when several
placements would be within one: who chooses first, which split takes a group that fits
nowhere, how ties break. A mutation run over ``splitting/stratified.py`` showed that the outcome
tests alone leave those rules free to change.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from corpusmill.errors import InputError
from corpusmill.schema import Record
from corpusmill.steps import SplitKey, SplitKeys
from splitting import StratifiedSplitter
from splitting.stratified import NO_LABEL, _dominant, _dominant_classes, _floor, joint_targets

SOURCE = {"kind": "import", "uri": "t", "dataset": "t"}
THREE = ("train", "validation", "test")


def fill(sizes: list[int], target: dict[str, int], filled: dict[str, int] | None = None) -> tuple[list[str], Counter]:
    """Run ``_fill`` over groups of these sizes, in this (already hash-sorted) order."""
    counts: Counter[str] = Counter(filled or {})
    return StratifiedSplitter._fill(sizes, target, counts, list(THREE)), counts


def test_fill_cuts_in_order_train_first_at_the_targets():
    splits, filled = fill([1] * 5, {"train": 3, "validation": 1, "test": 1})
    assert splits == ["train", "train", "train", "validation", "test"]
    assert filled == {"train": 3, "validation": 1, "test": 1}


def test_fill_gives_a_group_to_a_split_when_that_leaves_it_no_further_from_its_target():
    # train holds 2 of 3: a group of 2 makes it 4 (one over), leaving it out leaves it one
    # under — a tie, and a tie takes the group.
    assert fill([2, 2], {"train": 3, "validation": 2, "test": 0})[0] == ["train", "train"]
    # A group of 3 into an empty train of target 1 would overshoot by 2: it goes on.
    assert fill([3], {"train": 1, "validation": 3, "test": 0})[0] == ["validation"]


def test_fill_gives_a_group_that_fits_nowhere_to_the_split_furthest_below_target():
    # The third group of 3 overshoots validation (full) and test (target 1): train is 1 below
    # target, test 1 below: the tie goes to the split named first.
    splits, filled = fill([3, 3, 3], {"train": 4, "validation": 2, "test": 1})
    assert splits == ["train", "validation", "train"]
    assert filled == {"train": 6, "validation": 3}
    # With room in test, the third group fits there.
    assert fill([3, 3, 3], {"train": 4, "validation": 2, "test": 2})[0] == ["train", "validation", "test"]
    # Without the tie, the split furthest below target takes it, wherever it stands: here the
    # last group overshoots test (target 0), and validation is 1 below target, train 0.
    assert fill([1, 3, 3], {"train": 1, "validation": 4, "test": 0})[0] == ["train", "validation", "validation"]


def test_fill_moves_on_through_the_splits_in_order_and_never_back():
    # train is full after one record; validation takes the next while test, further below its
    # target, waits its turn.
    assert fill([1] * 5, {"train": 1, "validation": 1, "test": 3})[0] == ["train", "validation", "test", "test", "test"]
    # A group of 10 passes train (target 3) for validation; the next record goes on to test, not
    # back to train, though train is further below target.
    assert fill([10, 1], {"train": 3, "validation": 5, "test": 1})[0] == ["validation", "test"]
    # A group of 3 overshoots train (target 1) by 2 and so passes it; validation takes it.
    assert fill([3], {"train": 1, "validation": 2, "test": 5})[0] == ["validation"]
    # Where no split takes it, the deficit decides, not the target: train is 3 below, test 0.
    assert fill([10, 1], {"train": 3, "validation": 5, "test": 0})[0] == ["validation", "train"]


def test_fill_counts_what_earlier_releases_already_put_in_each_split():
    splits, filled = fill([1, 1], {"train": 3, "validation": 1, "test": 1}, filled={"train": 3})
    assert splits == ["validation", "test"]
    assert filled == {"train": 3, "validation": 1, "test": 1}


def test_joint_targets_give_a_class_remainder_to_the_largest_fractional_shares():
    # 7 × (0.8, 0.1, 0.1) = 5.6, 0.7, 0.7: the two leftover records go to validation and test.
    assert joint_targets({"a": 7}, dict(zip(THREE, (0.8, 0.1, 0.1), strict=True))) == {
        "a": {"train": 5, "validation": 1, "test": 1}
    }
    # 9 × (0.5, 0.3, 0.2) = 4.5, 2.7, 1.8: floors 4, 2, 1, then test (0.8) and validation (0.7).
    assert joint_targets({"a": 9}, dict(zip(THREE, (0.5, 0.3, 0.2), strict=True))) == {
        "a": {"train": 4, "validation": 3, "test": 2}
    }


def test_joint_targets_let_the_larger_class_choose_its_extra_record_first():
    # Both classes need one extra record; the split totals are 2 and 2, so only one class can
    # put its extra in train (the first split on a tie of fractions): the larger one does.
    halves = {"train": 0.5, "test": 0.5}
    assert joint_targets({"small": 1, "large": 3}, halves) == {
        "small": {"train": 0, "test": 1},
        "large": {"train": 2, "test": 1},
    }
    # Equal sizes: by name.
    assert joint_targets({"b": 1, "a": 1}, halves) == {"a": {"train": 1, "test": 0}, "b": {"train": 0, "test": 1}}


def test_joint_targets_let_the_class_with_more_extra_records_choose_first():
    """(0.4, 0.3, 0.3): ``b`` (2 records) needs two extra records, ``a`` (1) one; totals are
    1, 1, 1. ``b`` chooses first, its two largest fractions (train 0.8, validation 0.6); ``a``
    gets the split left with room."""
    ratios = dict(zip(THREE, (0.4, 0.3, 0.3), strict=True))
    assert joint_targets({"a": 1, "b": 2}, ratios) == {
        "a": {"train": 0, "validation": 0, "test": 1},
        "b": {"train": 1, "validation": 1, "test": 0},
    }


def test_joint_targets_rank_splits_by_the_fraction_rounding_down_lost():
    """Two classes of 9 over (0.5, 0.3, 0.2): the class choosing first takes test (1.8 → lost 0.8)
    and validation (2.7 → lost 0.7), not the splits with the largest exact shares."""
    ratios = dict(zip(THREE, (0.5, 0.3, 0.2), strict=True))
    targets = joint_targets({"a": 9, "b": 9}, ratios)
    assert targets["a"] == {"train": 4, "validation": 3, "test": 2}
    assert {s: targets["a"][s] + targets["b"][s] for s in THREE} == {"train": 9, "validation": 5, "test": 4}


def test_joint_targets_repair_through_a_chain_of_moves_when_no_direct_move_exists():
    """8 + 2 records over (0.1, 0.2, 0.45, 0.25): split totals 1, 2, 5, 2. The greedy pass leaves
    dev one over and test one under, and neither class can move a record straight from dev to
    test within one of its share (a is at its floor in dev, b rounded up in test). A chain does:
    b moves dev → train, a moves train → test. (Found by the 20,000-case property test: the
    direct moves alone left 10 cases in 100,000 with split totals off by one.)"""
    ratios = dict(zip(("train", "validation", "test", "dev"), (0.1, 0.2, 0.45, 0.25), strict=True))
    assert joint_targets({"a": 8, "b": 2}, ratios) == {
        "a": {"train": 0, "validation": 2, "test": 4, "dev": 2},
        "b": {"train": 1, "validation": 0, "test": 1, "dev": 0},
    }


def test_joint_targets_hold_for_every_small_two_class_case_on_a_grid_of_four_way_ratios():
    """Exhaustive where chains of moves are needed (about one case in ten thousand at random):
    two classes of up to 14 records, four splits in twentieths."""
    names = ("train", "validation", "test", "dev")
    for parts in itertools.product(range(1, 10), repeat=3):
        if sum(parts) >= 20:
            continue
        ratios = dict(zip(names, [p / 20 for p in (*parts, 20 - sum(parts))], strict=True))
        for a in range(1, 15):
            for b in range(1, a + 1):
                sizes = {"a": a, "b": b}
                targets = joint_targets(sizes, ratios)
                for c, n in sizes.items():
                    assert sum(targets[c].values()) == n
                    assert all(abs(targets[c][s] - n * r) < 1 for s, r in ratios.items()), (sizes, ratios)
                total = a + b
                floors = {s: _floor(total * r) for s, r in ratios.items()}
                leftover = sorted(names, key=lambda s: -(total * ratios[s] - floors[s]))[: total - sum(floors.values())]
                expected = {s: floors[s] + (s in leftover) for s in names}
                assert {s: targets["a"][s] + targets["b"][s] for s in names} == expected, (sizes, ratios)


def test_a_whole_number_share_is_never_rounded_up():
    """10 records over (0.05, 0.05, 0.1, 0.8): 0.5, 0.5, 1 and 8. The extra record goes to train
    or validation (0.5 → 1), never to dev, whose share is exactly 8, though dev has room left
    (the totals are 1, 1, 2, 19 with the other class)."""
    ratios = dict(zip(("train", "validation", "test", "dev"), (0.05, 0.05, 0.1, 0.8), strict=True))
    targets = joint_targets({"a": 13, "b": 10}, ratios)
    assert targets["b"]["test"] == 1 and targets["b"]["dev"] == 8
    assert targets["b"]["train"] + targets["b"]["validation"] == 1


def test_floor_forgives_float_error_but_not_a_whole_unit():
    assert _floor(1500 * 0.7) == 1050  # 1049.9999999999998
    assert _floor(2.0) == 2 and _floor(2.5) == 2 and _floor(0.0) == 0


def test_joint_targets_repair_an_overfilled_split_by_moving_a_rounded_up_record():
    """Three classes of 2 over (0.6, 0.2, 0.2): every class's fractions say train (1.2), then
    validation and test tie (0.4); the split totals are 4, 1, 1. Whatever the greedy pass
    overfills is moved back so that totals and per-class shares both hold."""
    ratios = dict(zip(THREE, (0.6, 0.2, 0.2), strict=True))
    targets = joint_targets({"a": 2, "b": 2, "c": 2}, ratios)
    assert {s: sum(t[s] for t in targets.values()) for s in THREE} == {"train": 4, "validation": 1, "test": 1}
    for n in targets.values():
        assert sum(n.values()) == 2 and all(abs(n[s] - 2 * r) < 1 for s, r in ratios.items())


def test_a_group_is_stratified_by_its_most_frequent_label_ties_alphabetical():
    keys = SplitKeys(seed=0)
    for i, label in enumerate(["b", "a", "b", "c"]):
        keys.append(SplitKey(f"r{i}", label, "g"))

    def dominant(members: list[int]) -> str:
        """The class of a group of these records (the others in a second group)."""
        member_group = np.array([0 if i in members else 1 for i in range(4)])
        classes, group_class = _dominant_classes(keys, member_group, 2)
        return classes[group_class[0]]

    assert dominant([0, 1, 2, 3]) == "b"
    assert dominant([0, 1]) == "a"  # one each: alphabetical
    assert dominant([3, 0]) == "b"
    assert _dominant("z") == "z"
    assert _dominant(["z", "b", "m"]) == "b"  # a multi-label record counts as its first label by name
    assert _dominant(None) == NO_LABEL
    assert _dominant([]) == NO_LABEL


def split_groups(groups: dict[str, tuple[int, list[str] | str | None]], ratios: dict[str, float], **params) -> dict:
    """Split ``{group: (records, label)}`` and return each group's split (checked to be one)."""
    records = [
        Record(id=f"{group}{i}", text=f"record {i} of group {group}", label=label, group=group, source=SOURCE)
        for group, (size, label) in groups.items()
        for i in range(size)
    ]
    splits = StratifiedSplitter(seed=0, ratios=ratios, **params).split_records(records)
    placed: dict[str, str] = {}
    for record, split in zip(records, splits, strict=True):
        assert placed.setdefault(record.group, split) == split
    return placed


HALVES = {"train": 0.5, "test": 0.5}


def test_multi_label_places_the_rarest_label_first_and_its_largest_group_first():
    """y has one group (R), x two (Z of 2 records, T of 1). y first: R ties everywhere and takes
    train. Then x's largest group, Z (though T comes first by name): x is wanted equally, but test
    wants more records. Then T: train still wants x."""
    placed = split_groups({"R": (1, ["y"]), "Z": (2, ["x"]), "T": (1, ["x"])}, HALVES)
    assert placed == {"R": "train", "Z": "test", "T": "train"}


def test_multi_label_puts_a_group_where_its_label_is_most_wanted_before_where_records_are():
    """After R and S (as above), T of label x goes to train where x is wanted, although train
    and test want as many records; U (no label at all) goes where records are most wanted."""
    placed = split_groups(
        {"R": (1, ["y"]), "S": (2, ["x"]), "T": (1, ["x"]), "U": (2, None), "V": (1, ["y", "x"])},
        HALVES,
    )
    # x: 4 records (2 per split wanted), y: 2 (1 per split), 7 records (3.5 per split).
    # y first (R and V; V is one record, R one: R then V by hash are both size 1, so check both
    # land apart), then x's remaining S (2), T (1), then U where records are wanted.
    assert placed["R"] != placed["V"]
    assert placed["S"] != placed["T"]
    counts = Counter()
    for group, split in placed.items():
        counts[split] += {"R": 1, "S": 2, "T": 1, "U": 2, "V": 1}[group]
    assert abs(counts["train"] - counts["test"]) <= 1


def write_release(directory: Path, splits: dict[str, list[str]]) -> Path:
    """The two parts of a release ``previous_splits`` reads: the manifest and the JSONL mirrors."""
    directory.mkdir()
    manifest = {"splits": {name: {"jsonl": f"data/{name}.jsonl"} for name in splits}}
    (directory / "data").mkdir()
    for name, ids in splits.items():
        (directory / "data" / f"{name}.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_a_previous_split_the_ratios_do_not_name_is_refused_only_when_a_record_was_in_it(tmp_path):
    previous = write_release(tmp_path / "v1", {"train": ["G0"], "test": ["G1"], "dev": ["gone1"]})
    placed = split_groups({"G": (4, "a"), "H": (6, "a")}, HALVES, previous=previous)
    assert placed["G"] in ("train", "test")  # no record of this dataset was in "dev"
    moved = write_release(tmp_path / "v2", {"train": ["G0"], "dev": ["H1", "H2"]})
    with pytest.raises(InputError, match=r"v2: records in split\(s\) dev that ratios do not name"):
        split_groups({"G": (4, "a"), "H": (6, "a")}, HALVES, previous=moved)


def test_a_group_with_old_records_in_several_splits_follows_most_of_them(tmp_path):
    previous = write_release(tmp_path / "v1", {"train": ["G0"], "test": ["G1", "G2"]})
    placed = split_groups({"G": (4, "a"), "H": (6, "a")}, HALVES, previous=previous)
    assert placed["G"] == "test"  # two of its old records were in test, one in train; G3 is new
    splitter = StratifiedSplitter(seed=0, ratios=HALVES, previous=previous)
    records = [Record(id=f"G{i}", text=f"record {i}", label="a", group="G", source=SOURCE) for i in range(4)]
    splitter.split_records(records)
    assert splitter.report["previous"] == {"kept": 3, "moved": 1}  # G0 left train to stay with its group


def test_multi_label_counts_what_a_previous_release_already_put_in_each_split(tmp_path):
    """P (2 records of x) was in train; x has 4 records, 2 wanted per split: train already
    has its share, so both new x groups go to test."""
    previous = write_release(tmp_path / "v1", {"train": ["P0", "P1"], "test": []})
    placed = split_groups({"P": (2, ["x"]), "S": (1, ["x"]), "T": (1, ["x"])}, HALVES, previous=previous)
    assert placed == {"P": "train", "S": "test", "T": "test"}


def test_single_label_counts_what_a_previous_release_already_put_in_each_split(tmp_path):
    """Class a: 4 records, 2 per split. Old group P (2 records) stays in test, so the two new
    single-record groups both go to train, whatever their hash order."""
    previous = write_release(tmp_path / "v1", {"train": [], "test": ["P0", "P1"]})
    placed = split_groups({"P": (2, "a"), "S": (1, "a"), "T": (1, "a"), "Q": (4, "b")}, HALVES, previous=previous)
    assert (placed["P"], placed["S"], placed["T"]) == ("test", "train", "train")


@pytest.mark.parametrize("policy", ["train", "drop"])
def test_a_rare_class_with_an_old_record_keeps_its_old_split(tmp_path, policy):
    """A rare class's group that a previous release placed stays there (it is neither moved to
    train nor dropped); its new groups follow the policy."""
    previous = write_release(tmp_path / "v1", {"train": ["C00"], "validation": [], "test": ["R0"]})
    groups = {f"C{i:02d}": (1, "common") for i in range(20)} | {"R": (1, "rare"), "N": (1, "rare")}  # 2 × 0.1: rare
    records = [
        Record(id=f"{g}{i}", text=f"record {i} of {g}", label=label, group=g, source=SOURCE)
        for g, (size, label) in groups.items()
        for i in range(size)
    ]
    splitter = StratifiedSplitter(seed=0, previous=previous, rare_classes=policy)
    splits = dict(zip((r.id for r in records), splitter.split_records(records), strict=True))
    assert splits["R0"] == "test" and splits["C000"] == "train"
    if policy == "train":
        assert splits["N0"] == "train"
    else:
        assert splits["N0"].reason == "rare_class" and splits["N0"].detail == {"label": "rare"}
    assert splitter.report["rare_classes"] == {"rare": 2}


def test_a_class_is_rare_when_a_split_would_expect_under_one_record_or_it_has_fewer_groups_than_splits():
    singles = {f"t{i}": (1, "ten") for i in range(10)} | {f"n{i}": (1, "nine") for i in range(9)}
    few_groups = {"g0": (20, "three"), "g1": (20, "three"), "g2": (20, "three"), "h0": (30, "two"), "h1": (30, "two")}
    splitter = StratifiedSplitter(seed=0)
    records = [
        Record(id=f"{g}-{i}", text=f"record {i} of {g}", label=label, group=g, source=SOURCE)
        for g, (size, label) in (singles | few_groups).items()
        for i in range(size)
    ]
    splitter.split_records(records)
    # 10 × 0.1 = 1 record expected in validation: enough; 9 × 0.1 is not. Three groups fill three
    # splits; two cannot.
    assert splitter.report["rare_classes"] == {"nine": 9, "two": 60}
    assert splitter.report["rare_policy"] == "train"
    dropping = StratifiedSplitter(seed=0, rare_classes="drop")
    dropping.split_records(records)
    assert dropping.report["rare_policy"] == "drop"
    with pytest.raises(Exception) as info:
        StratifiedSplitter(seed=0, rare_classes="error").split_records(records)
    assert str(info.value) == "split: classes too small for every split (rare_classes: error): nine (9), two (60)"


def test_fail_on_leakage_names_the_count_and_the_setting():
    records = [Record(id=f"r{i}", text="the very same sentence here", source=SOURCE) for i in range(40)]
    with pytest.raises(Exception) as info:
        StratifiedSplitter(seed=0, leakage={"fail_on_leakage": True}).split_records(records)
    leaked = StratifiedSplitter(seed=0).split_records(records).count("train")
    assert str(info.value) == (
        f"split: leakage across splits: {40 - leaked} train records duplicate validation/test records "
        "(see the split report); fail_on_leakage is set"
    )


def test_the_card_section_is_empty_without_a_report():
    from corpusmill.reports import StepReport, StepStats

    splitter = StratifiedSplitter(seed=0)
    assert splitter.card_section(StepReport("split.stratified", "stratified", "split", StepStats())) == ""


def test_an_empty_group_value_groups_nothing_and_a_missing_stratum_is_no_class():
    records = [
        Record(
            id=f"r{i}", text=f"record {i}", label="a", meta={"conv": "", "tier": "gold"} if i % 2 else {}, source=SOURCE
        )
        for i in range(60)
    ]
    splits = StratifiedSplitter(seed=0, group_by="meta.conv").split_records(records)
    assert len({s for r, s in zip(records, splits, strict=True) if r.meta.get("conv") == ""}) == 3  # not one group
    splitter = StratifiedSplitter(seed=0, stratify_by="meta.tier")
    splitter.split_records(records)
    assert set(splitter.report["classes"]) == {"gold"}  # the records without a tier are no class "None"


def test_multi_label_unlabelled_groups_go_where_records_are_most_wanted():
    """After the labelled groups, the unlabelled ones fill each split towards its record share."""
    groups = {f"L{i}": (1, [f"tag{i % 4}"]) for i in range(100)} | {f"U{i:02d}": (1, None) for i in range(100)}
    placed = split_groups(groups, {"train": 0.8, "validation": 0.1, "test": 0.1})
    unlabelled = Counter(split for group, split in placed.items() if group.startswith("U"))
    assert unlabelled == {"train": 80, "validation": 10, "test": 10}
    other_seed = StratifiedSplitter(seed=5).split_records(
        [Record(id=f"{g}0", text=f"record of {g}", label=lb, group=g, source=SOURCE) for g, (_, lb) in groups.items()]
    )
    assert [s for s, g in zip(other_seed, groups, strict=True) if g.startswith("U")] != [
        placed[g] for g in groups if g.startswith("U")
    ]  # the unlabelled groups' order is the seed's


def test_multi_label_ties_are_broken_by_the_seeded_hash():
    """Labels with as many groups, and groups of one label with as many records, are taken in
    the order of a hash seeded by ``seed``: another seed, another placement."""
    one_group_per_label = {f"G{i}": (1, [f"label{i}"]) for i in range(6)}
    one_label = {f"G{i}": (1, ["same"]) for i in range(6)}
    for groups in (one_group_per_label, one_label):
        placements = set()
        for seed in range(8):
            records = [
                Record(id=f"{g}0", text=f"text of {g}", label=lb, group=g, source=SOURCE)
                for g, (_, lb) in groups.items()
            ]
            placements.add(tuple(StratifiedSplitter(seed=seed, ratios=HALVES).split_records(records)))
        assert len(placements) > 1


def test_multi_label_takes_a_plain_string_label_as_one_label():
    """A plain string among list labels is one label, not its characters: as the list form."""
    # R (3 records) takes train, Z test; T goes where its label xx is wanted (train), not where
    # records are (test), whether its label is written ["xx"] or "xx".
    as_lists = split_groups({"R": (3, ["yy"]), "Z": (2, ["xx"]), "T": (1, ["xx"])}, HALVES)
    mixed = split_groups({"R": (3, ["yy"]), "Z": (2, ["xx"]), "T": (1, "xx")}, HALVES)
    assert mixed == as_lists == {"R": "train", "Z": "test", "T": "train"}


def test_multi_label_counts_the_records_a_previous_release_placed(tmp_path):
    """P (2 records) stayed in train; S's label z is new, wanted equally everywhere: S goes where
    records are wanted, test (1.5 wanted) rather than train (1.5 - 2)."""
    previous = write_release(tmp_path / "v1", {"train": ["P0", "P1"], "test": []})
    placed = split_groups({"P": (2, ["x"]), "S": (1, ["z"])}, HALVES, previous=previous)
    assert placed == {"P": "train", "S": "test"}


def test_unlabelled_records_count_what_a_previous_release_placed(tmp_path):
    previous = write_release(tmp_path / "v1", {"train": ["P0", "P1", "Q0", "Q1"], "test": []})
    groups = {"P": (2, None), "Q": (2, None)} | {f"N{i}": (1, None) for i in range(6)}
    placed = split_groups(groups, HALVES, previous=previous)
    sizes = {group: size for group, (size, _) in groups.items()}
    totals = Counter()
    for group, split in placed.items():
        totals[split] += sizes[group]
    assert placed["P"] == placed["Q"] == "train" and totals == {"train": 5, "test": 5}
