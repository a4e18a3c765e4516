"""Back-translation throughput: corpusmill against nlpaug's BackTranslationAug, same machine, one run.

    .venv/bin/pip install nlpaug==1.1.11   # benchmark only; not a project dependency
    .venv/bin/python bench/backtranslate.py [--sentences 256] [--length 24]

Both tools get the same full-size Marian shaped like Helsinki-NLP/opus-mt-en-de (d_model 512,
6+6 layers, 8 heads, ffn 2048, vocab 58,101, swish, scaled embeddings; random weights, built and
saved here with from_pretrained-compatible files) in both directions. Random weights produce junk
of random length, so every side's output length is fixed (min = max new tokens) and both tools do
the same work. Measured: round trips per second, once at equal decoding (beam 4, nlpaug's
behaviour with opus-mt's generation config) and once at each tool's default (nlpaug: beam 4 from
the generation config; corpusmill: sampling with the CTranslate2 backend). Not a test; not in CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "helpers"))

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


def corpusmill_rate(forward: Path, backward: Path, texts: list[str], length: int, decoding: str, cache: Path) -> float:
    from augment import BackTranslate
    from corpusmill.schema import Record

    step = BackTranslate(
        seed=1,
        backend="ctranslate2",
        decoding=decoding,
        num_beams=4,
        max_new_tokens=length,
        cache_dir=str(cache),
        pivots=[{"language": "de", "forward": str(forward), "backward": str(backward)}],
        quality={
            "similarity": "none",
            "check_language": False,
            "drop_identical": False,
            "min_length_ratio": 0.01,
            "max_length_ratio": 100,
        },
    )
    step.ensure_setup()
    for translator in step.translators["de"]:  # the same fixed output length as nlpaug gets
        translator.backend.max_new_tokens = lambda settings, n=length: n  # type: ignore[method-assign]
        original = translator.backend.generate

        def fixed(texts, settings, original=original):  # type: ignore[no-untyped-def]
            return original(texts, settings.model_copy(update={"min_new_tokens": length}))

        translator.backend.generate = fixed  # type: ignore[method-assign]
    records = [
        Record(id=f"s{i}", text=t, split="train", source={"kind": "import", "uri": "b", "dataset": "b"})
        for i, t in enumerate(texts)
    ]
    list(step.run(records[:4]))  # warm-up (and conversion)
    step.cache.connection.execute("DELETE FROM translations")
    started = time.perf_counter()
    list(step.run(records))
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--length", type=int, default=24)
    args = parser.parse_args()
    texts = sentences(args.sentences)
    with tempfile.TemporaryDirectory() as tmp:
        forward = full_size_marian(Path(tmp) / "en-de", "en", "de", args.length)
        backward = full_size_marian(Path(tmp) / "de-en", "de", "en", args.length)
        theirs = nlpaug_rate(forward, backward, texts, args.length)
        ours_beam = corpusmill_rate(forward, backward, texts, args.length, "beam", Path(tmp) / "cache")
        ours_default = corpusmill_rate(forward, backward, texts, args.length, "sample", Path(tmp) / "cache")
    print(f"{len(texts)} sentences, {args.length} tokens out on each side, 2 CPU cores")
    print(f"nlpaug BackTranslationAug (beam 4, its default): {theirs:7.2f} round trips/s")
    for label, rate in (("beam 4 (equal decoding)", ours_beam), ("default (sampling)", ours_default)):
        print(f"corpusmill, {label:24s}:          {rate:7.2f} round trips/s  ratio {rate / theirs:.1f}x")


if __name__ == "__main__":
    main()
