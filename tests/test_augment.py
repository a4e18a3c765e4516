"""Back-translation with a tiny MarianMT trained on real parallel text, and the light augmenters."""

from __future__ import annotations

import json
import time

import pytest
from tiny_marian import backtranslate_params

from augment import BackTranslate, EasyDataAugmenter
from augment.quality import QualityFilter, QualityParams
from augment.translate import DecodeSettings, ModelUnavailable, Translator, load_backend, resolve_model
from corpusmill.config import load_config
from corpusmill.errors import ConfigError
from corpusmill.executor import LocalExecutor
from corpusmill.release import verify_release
from corpusmill.schema import Record

SOURCE = {"kind": "import", "uri": "t", "dataset": "t"}
SENTENCES = [
    "I am very happy.",
    "Where is the station?",
    "Tom is tired.",
    "I like dogs.",
    "We are hungry.",
    "This is my book.",
    "It is cold today.",
    "He can swim.",
]


def rec(i, text=None, split="train", **kw) -> Record:
    return Record(id=f"r{i}", text=text, split=split, source=SOURCE, label=kw.pop("label", "x"), **kw)


def step(tiny_marian, tmp_path, **params) -> BackTranslate:
    defaults = backtranslate_params(tiny_marian, tmp_path / "cache", drop_identical=False)
    del defaults["step"]
    return BackTranslate(seed=3, **{**defaults, **params})


def translator(path, backend, tmp_path, token_budget=64) -> Translator:
    resolved, fingerprint = resolve_model(str(path))
    loaded = load_backend(backend, resolved, fingerprint, "cpu", "float32", tmp_path / "cache")
    return Translator(loaded, fingerprint + backend, "forward:en-de", None, token_budget=token_budget)


def test_both_backends_give_the_same_greedy_output(tiny_marian, tmp_path):
    greedy = DecodeSettings(strategy="greedy")
    hf = translator(tiny_marian[0], "transformers", tmp_path).translate(SENTENCES, greedy)
    ct2 = translator(tiny_marian[0], "ctranslate2", tmp_path).translate(SENTENCES, greedy)
    assert hf == ct2
    assert all(len(h) == 1 and h[0] for h in hf)
    assert any("ist" in h[0] or "bin" in h[0] for h in hf)  # it really translates into German


def test_ctranslate2_spreads_a_deterministic_batch_over_its_threads_with_the_same_output(tiny_marian, tmp_path):
    """Greedy and beam search reach CTranslate2 in one call, cut into two sub-batches per
    inter-thread (both cores busy to the end); the output is the one-batch output, so release bytes
    do not change. Seeded sampling stays in the Translator's batches, whole."""
    engine = translator(tiny_marian[0], "ctranslate2", tmp_path, token_budget=64)
    backend = engine.backend
    calls = []
    original = backend.translator.translate_batch

    class Spy:
        def translate_batch(self, tokens, **options):
            calls.append((len(tokens), options.get("max_batch_size")))
            return original(tokens, **options)

    backend.translator = Spy()
    for settings in (DecodeSettings(strategy="greedy"), DecodeSettings(strategy="beam", num_beams=4)):
        spread_out = engine.translate(SENTENCES, settings)
        backend.inter_threads = 1
        backend.token_budget = 10_000
        whole = backend.generate(SENTENCES, settings)
        backend.inter_threads, backend.token_budget = 2, 64
        assert spread_out == whole
        assert calls[-2:] == [(len(SENTENCES), -(-len(SENTENCES) // 4)), (len(SENTENCES), -(-len(SENTENCES) // 2))]
    engine.token_budget = 16
    sampled = engine.translate(SENTENCES, DecodeSettings(strategy="sample"))
    assert len(sampled) == len(SENTENCES)
    sample_calls = calls[4:]
    assert len(sample_calls) > 1  # the token budget of 16 cuts the sentences into several calls
    assert all(size is None for _, size in sample_calls)  # each call one batch


def test_order_is_restored_after_length_sorting(tiny_marian, tmp_path):
    texts = ["Tom is tired.", "I am very happy and we are hungry today.", "Hi.", "Where is the station?"]
    engine = translator(tiny_marian[0], "transformers", tmp_path, token_budget=24)
    batches = engine.batches(texts)
    assert len(batches) > 1 and [i for b in batches for i in b] != list(range(len(texts)))
    together = engine.translate(texts, DecodeSettings())
    alone = [engine.translate([t], DecodeSettings())[0] for t in texts]
    assert together == alone


def test_sampling_gives_n_distinct_variants_and_reports_shortfall(tiny_marian, tmp_path):
    bt = step(tiny_marian, tmp_path, decoding="sample", temperature=1.5, n=3)
    out = list(bt.run([rec(i, t) for i, t in enumerate(SENTENCES[:4])]))
    derived = [r for r in out if r.parent_id]
    discarded = sum(bt.stats.discarded.values())
    assert len(derived) + bt.stats.metrics["variants_shortfall"] + discarded == 12
    for parent in {r.parent_id for r in derived}:
        texts = [r.text for r in derived if r.parent_id == parent]
        assert len(texts) == len(set(texts))
    # Sampling really samples: greedy (or beam) decoding would give one text per sentence and
    # leave each parent with at most one variant.
    assert sum(len({r.text for r in derived if r.parent_id == f"r{i}"}) >= 2 for i in range(4)) >= 3


def test_each_discarded_variant_stays_with_its_parent_with_reason_and_similarity(tiny_marian, tmp_path):
    """What the release browser shows beside a parent: the back-translations the quality filter
    threw away, each with its reason, texts and chrF similarity (kept in ``meta["backtranslate"]``)."""
    bt = step(
        tiny_marian, tmp_path, quality={**backtranslate_params(tiny_marian, tmp_path)["quality"], "min_similarity": 0.4}
    )
    out = list(bt.run([rec(i, t) for i, t in enumerate(SENTENCES)]))
    parents = [r for r in out if not r.parent_id]
    kept = [r for r in out if r.parent_id]
    thrown = [(p, v) for p in parents for v in p.meta.get("backtranslate", {}).get("discarded", [])]
    assert kept and thrown  # the threshold keeps some and throws some away
    assert len(thrown) == sum(bt.stats.discarded.values())
    assert {v["reason"] for _, v in thrown} == set(bt.stats.discarded)
    for parent, variant in thrown:
        if variant["reason"] == "low_similarity":
            assert variant["similarity"] < 0.4 and len(variant["texts"]) == 1 and variant["texts"][0] != parent.text
    assert all(r.augmentation.params["similarity"] >= 0.4 for r in kept)


def test_default_decoding_is_greedy_for_one_variant_and_beam_search_for_more(tiny_marian, tmp_path):
    """The default chosen by bench/decoding.py: greedy at n=1; the n best beams at n>1, which give
    distinct variants where greedy could give only one."""
    records = [rec(i, t) for i, t in enumerate(SENTENCES)]
    defaults = backtranslate_params(tiny_marian, tmp_path / "cache", drop_identical=False)
    del defaults["step"], defaults["decoding"]
    one = list(BackTranslate(seed=3, **defaults).run(records))
    assert {r.augmentation.params["decoding"]["strategy"] for r in one if r.parent_id} == {"greedy"}
    two = list(BackTranslate(seed=3, n=2, **defaults).run(records))
    decodings = {json.dumps(r.augmentation.params["decoding"], sort_keys=True) for r in two if r.parent_id}
    assert [json.loads(d)["strategy"] for d in decodings] == ["beam"]
    per_parent = [len({r.text for r in two if r.parent_id == f"r{i}"}) for i in range(len(SENTENCES))]
    assert sum(count == 2 for count in per_parent) >= len(SENTENCES) // 2


def test_cache_makes_a_rerun_translate_nothing(tiny_marian, tmp_path):
    records = [rec(i, t) for i, t in enumerate(SENTENCES)]
    first = step(tiny_marian, tmp_path)
    a = [r.text for r in first.run(records)]
    assert first.stats.metrics["sentences_translated"] > 0
    second = step(tiny_marian, tmp_path)
    b = [r.text for r in second.run(records)]
    assert a == b
    assert second.stats.metrics["sentences_translated"] == 0
    assert second.cache.hits > 0 and second.cache.misses == 0


def test_provenance_train_only_and_chat_turns(tiny_marian, tmp_path):
    chat = Record(
        id="c1",
        split="train",
        source=SOURCE,
        group="conv-1",
        messages=[
            {"role": "user", "content": "Where is the station?"},
            {"role": "assistant", "content": "It is near the park."},
        ],
    )
    records = [rec(1, "I am very happy.", group="g1"), rec(2, "Tom is tired.", split="validation"), chat]
    bt = step(tiny_marian, tmp_path)
    out = list(bt.run(records))
    derived = {r.parent_id: r for r in out if r.parent_id}
    assert set(derived) == {"r1", "c1"}  # the validation record is never augmented
    child = derived["r1"]
    assert child.id == "r1~bt0" and child.label == "x" and child.group == "g1" and child.split == "train"
    params = child.augmentation.params
    assert child.augmentation.method == "bt" and params["method"] == "backtranslation"
    assert params["pivot"] == "de" and params["backend"] == "ctranslate2"
    assert params["models"]["forward"]["fingerprint"].startswith("dir:")
    assert params["decoding"]["strategy"] == "greedy" and params["similarity"] is not None
    chat_child = derived["c1"]
    assert chat_child.messages[1].content == "It is near the park."
    assert chat_child.messages[0].role == "user" and chat_child.group == "conv-1"


def test_long_texts_are_split_into_sentences_and_reassembled(tiny_marian, tmp_path):
    text = "I am very happy. Tom is tired.\nWhere is the station? It is cold today."
    bt = step(tiny_marian, tmp_path)
    child = next(r for r in bt.run([rec(1, text)]) if r.parent_id)
    lines = child.text.split("\n")
    assert len(lines) == 2
    parts = [bt.splitter.split(line)[1] for line in lines]
    assert [len(p) for p in parts] == [2, 2]
    clauses = ", ".join(["Tom is tired"] * 40) + "."  # longer than the tiny model's 128 positions
    no_breaks = " ".join(["happy"] * 200) + "."
    long_step = step(tiny_marian, tmp_path)
    out = list(long_step.run([rec(2, clauses), rec(3, no_breaks)]))
    forward = long_step.translators["de"][0]
    _, pieces = long_step._pieces(clauses, forward)
    parts = pieces[0][0]
    assert len(parts) > 1 and " ".join(parts) == clauses  # cut at its commas, nothing lost
    assert all(forward.backend.token_length(p) <= forward.backend.max_source_tokens - 2 for p in parts)
    assert long_step._pieces(no_breaks, forward) is None
    stats = long_step.stats
    assert stats.metrics["skipped.sentence_too_long"] == 1  # r3 cannot be cut: skipped, never truncated
    assert not any(r.parent_id == "r3" for r in out)
    discarded = sum(stats.discarded.values())
    assert sum(r.parent_id == "r2" for r in out) + discarded == 1  # r2 was translated in parts


def test_every_quality_reason():
    checks = QualityFilter(QualityParams(min_similarity=0.6, max_similarity=0.97), "en").check(
        [
            ("Where is my card?", "where is my card"),
            ("Where is my card?", "Where is my card? " * 5),
            ("Where is my new card?", "Wo ist meine neue Karte?"),
            ("Where is my new card?", "The weather is lovely in July."),
            ("I want to cancel my transfer.", "I want to cancel my transfer!!"),
            ("I want to cancel my transfer.", "Can I cancel the money transfer I sent?"),
        ]
    )
    assert [reason for reason, _ in checks] == [
        "identical",
        "length_ratio",
        "wrong_language",
        "low_similarity",
        "identical",
        None,
    ]
    assert 0.6 < checks[-1][1] < 0.97
    chrf = QualityFilter(QualityParams(similarity="chrf", min_similarity=0.5), "en")
    assert chrf.check([("I want to cancel my transfer.", "The weather is lovely.")])[0][0] == "low_similarity"


def test_a_model_that_is_not_here_fails_fast_naming_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="Helsinki-NLP/opus-mt-en-de: not a local directory"):
        BackTranslate(cache_dir=str(tmp_path))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("operation", ["swap", "delete", "insert", "typo"])
def test_light_augmenters_are_seeded(operation):
    records = [rec(i, t) for i, t in enumerate(["How do I reset the password on my new card today"] * 3)]
    first = [r.text for r in EasyDataAugmenter(seed=1, operation=operation, n=2, rate=0.3).run(records)]
    again = [r.text for r in EasyDataAugmenter(seed=1, operation=operation, n=2, rate=0.3).run(records)]
    other = [r.text for r in EasyDataAugmenter(seed=2, operation=operation, n=2, rate=0.3).run(records)]
    assert first == again and first != other
    assert len(first) > 3


def test_synonyms_need_wordnet_and_say_so(monkeypatch, tmp_path):
    import nltk
    from nltk.corpus.reader import CorpusReader, WordNetCorpusReader
    from nltk.corpus.util import LazyCorpusLoader

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])  # an empty data directory
    omw = LazyCorpusLoader("omw-1.4", CorpusReader, r".*/wn-data-.*\.tab", encoding="utf8")
    monkeypatch.setattr(nltk.corpus, "wordnet", LazyCorpusLoader("wordnet", WordNetCorpusReader, omw))
    with pytest.raises(RuntimeError, match="needs NLTK's WordNet data"):
        EasyDataAugmenter(operation="synonym").ensure_setup()


def test_synonyms_come_from_wordnet_when_it_is_installed(monkeypatch):
    """The installed path, with a two-synset stand-in for WordNet's reader (the real database is
    a download): every replacement is one of the word's lemmas, never the word itself."""
    import nltk

    class Lemma:
        def __init__(self, name: str) -> None:
            self._name = name

        def name(self) -> str:
            return self._name

    class Synset:
        def __init__(self, *names: str) -> None:
            self._lemmas = [Lemma(n) for n in names]

        def lemmas(self) -> list[Lemma]:
            return self._lemmas

    table = {"card": [Synset("card", "bill_of_fare")], "reset": [Synset("reset", "readjust")]}

    class WordNet:
        def synsets(self, word: str) -> list[Synset]:
            return table.get(word, [])

    monkeypatch.setattr(nltk.corpus, "wordnet", WordNet())
    step = EasyDataAugmenter(seed=1, operation="synonym", rate=0.5)  # two words: the two with synonyms
    out = [r.text for r in step.run([rec(1, "reset my card now")]) if r.parent_id]
    assert out == ["readjust my bill of fare now"]


def test_augmenting_validation_needs_force_and_the_card_flags_it(tiny_marian, tmp_path, make_config):
    rows = [{"text": t, "label": "a" if i % 2 else "b"} for i, t in enumerate(SENTENCES * 5)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    augment = backtranslate_params(tiny_marian, tmp_path / "cache")
    source = [{"type": "jsonl", "path": "in.jsonl", "label": "label"}]
    bad = make_config(tmp_path, sources=source, augment=[{**augment, "splits": ["train", "validation"]}])
    with pytest.raises(ConfigError, match=r"augment\[0\]: .*set force: true"):
        load_config(bad)
    config = make_config(tmp_path, sources=source, clean=[{"step": "exact_dedup"}], augment=[augment])
    release = LocalExecutor(load_config(config), workers=2).build().release_dir
    manifest = verify_release(release)
    assert manifest["accounting"]["balanced"] and manifest["accounting"]["augmented_records"] > 0
    assert manifest["splits"]["train"]["augmented"] == manifest["accounting"]["augmented_records"]
    assert manifest["splits"]["validation"]["augmented"] == manifest["splits"]["test"]["augmented"] == 0
    card = (release / "README.md").read_text()
    assert "## Augmentation" in card and "Warning" not in card
    forced = make_config(
        tmp_path,
        sources=source,
        augment=[{**augment, "splits": ["train", "validation"], "force": True}],
        release={"name": "forced", "version": "1"},
    )
    forced_release = LocalExecutor(load_config(forced), workers=1).build().release_dir
    assert verify_release(forced_release)["splits"]["validation"]["augmented"] > 0
    assert (
        "**Warning:** `augment.backtranslate` also augmented validation" in (forced_release / "README.md").read_text()
    )


def test_augment_through_the_command_line(tiny_marian, tmp_path):
    import os

    from cli import run_cli

    forward, backward = tiny_marian
    source = tmp_path / "in.jsonl"
    source.write_text("".join(rec(i, t).to_json() + "\n" for i, t in enumerate(SENTENCES)))
    out = tmp_path / "out.jsonl"
    pivots = f"pivots=[{{language: de, forward: '{forward}', backward: '{backward}'}}]"
    settings = ["--set", pivots, "--set", "n=2", "--set", "quality.similarity=none"]
    done = run_cli(
        *["augment", str(source), "--out", str(out), "--step", "backtranslate", *settings, "--workers", "1"],
        env={**os.environ, "CORPUSMILL_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [Record.from_json(line) for line in out.read_text().splitlines()]
    originals = [r for r in records if r.parent_id is None]
    variants = [r for r in records if r.parent_id]
    assert [r.text for r in originals] == SENTENCES
    assert variants and {r.parent_id for r in variants} <= {r.id for r in originals}
    assert {r.augmentation.params["decoding"]["strategy"] for r in variants} == {"beam"}  # auto, n=2
    assert (tmp_path / "cache" / "translations.sqlite").exists()
