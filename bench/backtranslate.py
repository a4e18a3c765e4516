"""Back-translation throughput: corpusmill against nlpaug's BackTranslationAug and against the
engine's own limit (raw CTranslate2), same machine, one run.

    .venv/bin/pip install nlpaug==1.1.11   # benchmark only; not a project dependency
    .venv/bin/python bench/backtranslate.py [--sentences 256] [--length 24] [--runs 3]

Both tools get the same full-size Marian shaped like Helsinki-NLP/opus-mt-en-de (d_model 512,
6+6 layers, 8 heads, ffn 2048, vocab 58,101, swish, scaled embeddings; random weights, built and
saved here with from_pretrained-compatible files) in both directions. Random weights produce junk
of random length, so every side's output length is fixed (min = max new tokens) and both tools do
the same work. Measured: round trips per second, once at equal decoding (beam 4, nlpaug's
behaviour with opus-mt's generation config) and once at each tool's default (nlpaug: beam 4 from
the generation config; corpusmill: ``auto``, greedy for one variant, with the CTranslate2 backend;
bench/decoding.py compares every decoding, sampling included). Beside each corpusmill
line stands raw CTranslate2 with the same converted int8 model, the same threads, the sentences
tokenised beforehand (outside the timing), two sub-batches per inter-thread and the same decoding
as corpusmill (the chosen one forward, greedy back): what corpusmill's sentence splitting,
caching, filtering and provenance cost.
Each tool runs ``--runs`` times, alternating; medians with spread, and a noise verdict (the CPU
other processes used meanwhile). Not a test; not in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "helpers"))
sys.path.insert(0, str(REPO / "bench"))

from quiet import NoiseMonitor, spread  # noqa: E402

VOCAB = 58_101


def full_size_marian(out: Path, source_lang: str, target_lang: str, length: int) -> Path:
    """An opus-mt-en-de-shaped model with random weights and a working MarianTokenizer."""
    import torch
    from tiny_marian import load_pairs, marian_config, marian_tokenizer, train_marian
    from transformers import MarianMTModel

    small = train_marian(load_pairs(SHARED, 2000), out / "_tok", source_lang, target_lang, steps=1)
    vocab = json.loads((small / "vocab.json").read_text())
    pad = vocab.pop("<pad>")
    del pad
    for i in range(VOCAB - 1 - len(vocab)):
        vocab[f"▁w{i}"] = len(vocab)
    vocab["<pad>"] = len(vocab)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab))
    for name in ("source.spm", "target.spm"):
        (out / name).write_bytes((small / name).read_bytes())
    tokenizer = marian_tokenizer(out, source_lang, target_lang)
    config = marian_config(VOCAB, d_model=512, layers=6, heads=8, ffn=2048, positions=512)
    torch.manual_seed(0)
    model = MarianMTModel(config)
    with torch.no_grad():
        model.get_input_embeddings().weight[VOCAB - 1].zero_()
    model.generation_config.bad_words_ids = [[VOCAB - 1]]
    model.generation_config.num_beams = 4
    model.generation_config.min_new_tokens = length
    model.generation_config.max_new_tokens = length
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def sentences(count: int) -> list[str]:
    lines = (SHARED / "parallel" / "opennmt-toy-ende" / "src-train.txt").read_text(encoding="utf-8").splitlines()
    picked = [line.replace(" &apos;", "'").replace("&quot; ", '"') for line in lines if 17 <= len(line.split()) <= 23]
    return picked[:count]


def nlpaug_rate(forward: Path, backward: Path, texts: list[str], length: int) -> float:
    import nlpaug.augmenter.word as naw

    augmenter = naw.BackTranslationAug(
        from_model_name=str(forward), to_model_name=str(backward), device="cpu", max_length=length + 1, batch_size=32
    )
    augmenter.augment(texts[:4])  # warm-up
    started = time.perf_counter()
    augmenter.augment(texts)
    return len(texts) / (time.perf_counter() - started)


def unfiltered_step(forward: Path, backward: Path, cache: Path, **params: Any) -> Any:
    """A ``backtranslate`` step over the pair whose quality filter lets every variant through."""
    from augment import BackTranslate

    return BackTranslate(
        seed=1,
        cache_dir=str(cache),
        pivots=[{"language": "de", "forward": str(forward), "backward": str(backward)}],
        quality={
            "similarity": "none",
            "check_language": False,
            "drop_identical": False,
            "min_length_ratio": 0.01,
            "max_length_ratio": 100,
        },
        **params,
    )


def train_records(texts: list[str]) -> list[Any]:
    from corpusmill.schema import Record

    source = {"kind": "import", "uri": "b", "dataset": "b"}
    return [Record(id=f"s{i}", text=t, split="train", source=source) for i, t in enumerate(texts)]


def corpusmill_rate(
    forward: Path, backward: Path, texts: list[str], length: int, cache: Path, **decoding: Any
) -> float:
    """Round trips per second of the ``backtranslate`` step; ``decoding``: its decoding parameters."""
    step = unfiltered_step(forward, backward, cache, backend="ctranslate2", max_new_tokens=length, **decoding)
    step.ensure_setup()
    for translator in step.translators["de"]:  # the same fixed output length as nlpaug gets
        translator.backend.max_new_tokens = lambda settings, n=length: n  # type: ignore[method-assign]
        original = translator.backend.generate

        def fixed(texts, settings, original=original):  # type: ignore[no-untyped-def]
            return original(texts, settings.model_copy(update={"min_new_tokens": length}))

        translator.backend.generate = fixed  # type: ignore[method-assign]
    records = train_records(texts)
    list(step.run(records[:4]))  # warm-up (and conversion)
    step.cache.connection.execute("DELETE FROM translations")
    started = time.perf_counter()
    list(step.run(records))
    return len(texts) / (time.perf_counter() - started)


def raw_ctranslate2_rate(
    forward: Path, backward: Path, texts: list[str], length: int, decoding: str, cache: Path
) -> float:
    """Round trips per second of CTranslate2 alone: pre-tokenised input, one call per direction."""
    import ctranslate2
    import sentencepiece as spm

    from augment.translate import CTranslate2Backend
    from corpusmill.models import resolve_model

    def translator(path: Path) -> ctranslate2.Translator:
        converted = CTranslate2Backend.convert(str(path), resolve_model(str(path))[1], cache)
        return ctranslate2.Translator(
            str(converted), device="cpu", compute_type="int8", inter_threads=os.cpu_count() or 1, intra_threads=1
        )

    def pieces(model: Path) -> spm.SentencePieceProcessor:
        return spm.SentencePieceProcessor(model_file=str(model))

    threads = os.cpu_count() or 1
    options: dict[str, object] = {
        "max_batch_size": -(-len(texts) // (2 * threads)),  # two sub-batches per inter-thread: the fastest split
        "min_decoding_length": length,
        "max_decoding_length": length,
        "beam_size": 4 if decoding == "beam" else 1,
    }
    backward_options = {**options, "beam_size": 1}  # corpusmill's backward pass is greedy, whatever the forward
    there, back = translator(forward), translator(backward)
    english_in, german_out = pieces(forward / "source.spm"), pieces(forward / "target.spm")
    german_in, english_out = pieces(backward / "source.spm"), pieces(backward / "target.spm")
    tokens = [[*english_in.encode(t, out_type=str), "</s>"] for t in texts]
    there.translate_batch(tokens[:4], **options)  # warm-up
    started = time.perf_counter()
    german = [german_out.decode(r.hypotheses[0]) for r in there.translate_batch(tokens, **options)]
    # Each distinct pivot sentence once, as corpusmill does: random weights often give the same
    # pivot for many inputs, and the engine's limit is the least work that yields the output.
    distinct = list(dict.fromkeys(german))
    returned = back.translate_batch(
        [[*german_in.encode(g, out_type=str), "</s>"] for g in distinct], **backward_options
    )
    _ = [english_out.decode(r.hypotheses[0]) for r in returned]
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--length", type=int, default=24)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-nlpaug", action="store_true", help="corpusmill and the raw engine only")
    args = parser.parse_args()
    texts = sentences(args.sentences)
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        forward = full_size_marian(Path(tmp) / "en-de", "en", "de", args.length)
        backward = full_size_marian(Path(tmp) / "de-en", "de", "en", args.length)
        cache = Path(tmp) / "cache"
        sides = {
            "nlpaug": lambda: nlpaug_rate(forward, backward, texts, args.length),
            "ours beam": lambda: corpusmill_rate(forward, backward, texts, args.length, cache, decoding="beam"),
            "raw beam": lambda: raw_ctranslate2_rate(forward, backward, texts, args.length, "beam", cache),
            "ours greedy": lambda: corpusmill_rate(forward, backward, texts, args.length, cache),
            "raw greedy": lambda: raw_ctranslate2_rate(forward, backward, texts, args.length, "greedy", cache),
        }
        if args.no_nlpaug:
            del sides["nlpaug"]
        sides["raw beam"]()  # converts both models once, outside the measured runs
        noise = NoiseMonitor()
        for _ in range(args.runs):
            for name, run in sides.items():
                rates.setdefault(name, []).append(run())
        verdict = noise.verdict()
    print(f"{len(texts)} sentences, {args.length} tokens out on each side, {os.cpu_count()} CPU cores")
    if "nlpaug" in rates:
        print(f"nlpaug BackTranslationAug (beam 4, its default): {spread(rates['nlpaug'], ' round trips/s')}")
    for decoding, label in (("beam", "beam 4 (equal decoding)"), ("greedy", "default (auto: greedy at n=1)")):
        ours, raw = rates[f"ours {decoding}"], rates[f"raw {decoding}"]
        print(f"corpusmill, {label}: {spread(ours, ' round trips/s')}")
        print(f"  raw CTranslate2, same decoding: {spread(raw, ' round trips/s')}")
        if "nlpaug" in rates:
            print(f"  corpusmill / nlpaug: {spread([o / n for o, n in zip(ours, rates['nlpaug'], strict=True)], 'x')}")
        print(f"  corpusmill / raw engine: {spread([o / r for o, r in zip(ours, raw, strict=True)], 'x')}")
    print(verdict)


if __name__ == "__main__":
    main()
