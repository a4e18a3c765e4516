import pickle

from cleaning.dedup import ExactDedup
from cleaning.filters import LengthFilter
from cleaning.normalize import NormalizeText
from corpusmill.executor import run_chunk
from corpusmill.schema import Record
from splitting.random_split import RandomSplitter, target_counts

SOURCE = {"kind": "import", "uri": "t", "dataset": "t"}


def rec(i, text, **kw):
    return Record(id=f"r{i}", text=text, source=SOURCE, **kw)


def test_filter_counts_kept_and_dropped_by_reason_and_keeps_rejects():
    step = LengthFilter(min_chars=5, max_words=3)
    out = list(step.run([rec(1, "hi"), rec(2, "hello there"), rec(3, "one two three four")]))
    assert [r.id for r in out] == ["r2"]
    assert (step.stats.total, step.stats.kept, step.stats.dropped_total) == (3, 1, 2)
    assert step.stats.dropped == {"too_few_chars": 1, "too_many_words": 1}
    assert [(r.reason, r.record["id"]) for r in step.rejects] == [("too_few_chars", "r1"), ("too_many_words", "r3")]
    assert out[0].meta == {"length": {"chars": 11, "words": 2}}
    # Scored, then decided: a rejected record carries every score, not just the one that failed.
    assert step.rejects[0].record["meta"] == {"length": {"chars": 2, "words": 1}}
    assert step.rejects[1].record["meta"] == {"length": {"chars": 18, "words": 4}}


def test_mapper_normalises_text_and_chat_turns_and_rejects_empty_ones():
    step = NormalizeText(form="NFKC")
    chat = Record(
        id="c", messages=[{"role": "user", "content": "\u200b  "}, {"role": "assistant", "content": "x"}], source=SOURCE
    )
    out = list(step.run([rec(1, "  ﬁne\u200b   print\r\n\n\n\nnext  "), chat]))
    assert [r.text for r in out] == ["fine print\n\nnext"]
    assert step.rejects[0].reason == "empty_user_turn_after_normalize"


def test_dataset_step_sees_everything_and_names_the_original():
    step = ExactDedup()
    out = list(step.run([rec(1, "Where is my parcel?"), rec(2, "where is my PARCEL"), rec(3, "Other")]))
    assert [r.id for r in out] == ["r1", "r3"]
    assert step.rejects[0].record["meta"]["duplicate_of"] == "r1"
    assert step.stats.dropped["exact_duplicate"] == 1


def test_steps_pickle_and_give_the_same_result_after_unpickling():
    steps = [NormalizeText(), LengthFilter(min_chars=4)]
    lines = [rec(i, text).to_json() for i, text in enumerate(["  a  ", "long enough", "ok"])]
    expected = run_chunk(steps, lines)
    copies = pickle.loads(pickle.dumps(steps))
    assert (
        run_chunk(copies, lines)[0]
        == expected[0]
        == [rec(1, "long enough", meta={"length": {"chars": 11, "words": 2}}).to_json()]
    )


def test_random_split_hits_exact_counts_keeps_groups_together_and_is_seeded():
    records = [rec(i, f"t{i}", group=f"g{i // 3}") for i in range(300)]
    first = RandomSplitter(seed=1).split_records(records)
    assert first == RandomSplitter(seed=1).split_records(records)
    assert first != RandomSplitter(seed=2).split_records(records)
    assert {s: first.count(s) for s in set(first)} == {"train": 240, "validation": 30, "test": 30}
    by_group = {}
    for record, split in zip(records, first, strict=True):
        assert by_group.setdefault(record.group, split) == split


def test_target_counts_add_up():
    assert target_counts(7, {"train": 0.8, "validation": 0.1, "test": 0.1}) == {"train": 5, "validation": 1, "test": 1}
    assert sum(target_counts(1001, {"a": 0.5, "b": 0.25, "c": 0.25}).values()) == 1001


def test_digest_counts_number_and_count_each_digest_as_a_dict_would():
    """Batches of varied size (so sorted runs are made and merged many times), with digests
    repeated within a batch and across batches."""
    import random

    from corpusmill.digests import DigestCounts, digest

    rng = random.Random(11)
    counts = DigestCounts()
    numbers: dict[bytes, int] = {}
    seen: dict[bytes, int] = {}
    for _ in range(300):
        batch = [digest(str(rng.randrange(2000))) for _ in range(rng.randint(1, 40))]
        got_numbers, got_before = counts.add(batch)
        expected_numbers, expected_before = [], []
        for key in batch:
            numbers.setdefault(key, len(numbers))
            expected_numbers.append(numbers[key])
            expected_before.append(seen.get(key, 0))
            seen[key] = seen.get(key, 0) + 1
        assert got_numbers.tolist() == expected_numbers
        assert got_before.tolist() == expected_before
    assert len(counts) == len(numbers) > 1500
