"""A tiny MarianMT trained in seconds on ../shared/data/parallel, saved and reloaded with
``from_pretrained`` like any opus-mt model (the facts in shared/notes/offline-models.md)."""

from __future__ import annotations

import json
import random
from pathlib import Path


def load_pairs(shared: Path, limit: int = 5000) -> list[tuple[str, str]]:
    lines = (shared / "parallel" / "tatoeba-eng-deu" / "eng-deu.sample5k.tsv").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines[1 : limit + 1]]  # type: ignore[misc]


def marian_tokenizer(directory: Path, source_lang: str, target_lang: str):  # type: ignore[no-untyped-def]
    """The MarianTokenizer over ``source.spm``, ``target.spm`` and ``vocab.json`` in ``directory``."""
    from transformers import MarianTokenizer

    return MarianTokenizer(
        source_spm=str(directory / "source.spm"),
        target_spm=str(directory / "target.spm"),
        vocab=str(directory / "vocab.json"),
        source_lang=source_lang,
        target_lang=target_lang,
    )


def backtranslate_params(pair: tuple[Path, Path], cache_dir: Path, **quality: object) -> dict:
    """A greedy en→de→en ``backtranslate`` step over the tiny pair, its quality filter loose enough
    for the tiny model's rough output (``quality`` overrides)."""
    forward, backward = pair
    return {
        "step": "backtranslate",
        "decoding": "greedy",
        "cache_dir": str(cache_dir),
        "pivots": [{"language": "de", "forward": str(forward), "backward": str(backward)}],
        "quality": {
            "similarity": "chrf",
            "min_similarity": 0.0,
            "check_language": False,
            "min_length_ratio": 0.1,
            "max_length_ratio": 10,
            **quality,
        },
    }


def marian_config(vocab_size: int, d_model: int, layers: int, heads: int, ffn: int, positions: int):  # type: ignore[no-untyped-def]
    """A MarianConfig the way the opus-mt releases set it: <pad> last (and the decoder start),
    ``</s>`` = 0, swish, scaled embeddings."""
    from transformers import MarianConfig

    return MarianConfig(
        vocab_size=vocab_size,
        decoder_vocab_size=vocab_size,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
        max_position_embeddings=positions,
        pad_token_id=vocab_size - 1,
        decoder_start_token_id=vocab_size - 1,
        eos_token_id=0,
        forced_eos_token_id=0,
        activation_function="swish",
        scale_embedding=True,
    )


def train_marian(
    pairs: list[tuple[str, str]], out: Path, source_lang: str, target_lang: str, steps: int = 400, seed: int = 0
) -> Path:
    """Train ``source → target`` on ``pairs`` (given as (source, target)) and save to ``out``."""
    import sentencepiece as spm
    import torch
    from transformers import MarianMTModel

    torch.manual_seed(seed)
    random.seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "_spm"
    work.mkdir(exist_ok=True)
    for side, texts in (("source", [s for s, _ in pairs]), ("target", [t for _, t in pairs])):
        corpus = work / f"{side}.txt"
        corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(work / side),
            vocab_size=600,
            model_type="bpe",
            bos_id=-1,
            pad_id=-1,
            eos_id=0,
            unk_id=1,
            character_coverage=1.0,
            minloglevel=2,
        )
        (work / f"{side}.model").rename(out / f"{side}.spm")
    vocab: dict[str, int] = {"</s>": 0, "<unk>": 1}
    for side in ("source", "target"):
        processor = spm.SentencePieceProcessor(model_file=str(out / f"{side}.spm"))
        for i in range(processor.get_piece_size()):
            vocab.setdefault(processor.id_to_piece(i), len(vocab))
    vocab["<pad>"] = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = marian_tokenizer(out, source_lang, target_lang)
    pad = vocab["<pad>"]
    config = marian_config(len(vocab), d_model=64, layers=2, heads=4, ffn=128, positions=128)
    model = MarianMTModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = random.sample(pairs, 64)
        encoded = tokenizer([s for s, _ in batch], text_target=[t for _, t in batch], padding=True, return_tensors="pt")
        encoded["labels"][encoded["labels"] == pad] = -100
        loss = model(**encoded).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            # As in the opus-mt releases, <pad> (the decoder's start token) keeps a zero embedding;
            # the tied output projection would otherwise train it, and CTranslate2 assumes zero.
            model.get_input_embeddings().weight[pad].zero_()
    model.eval()
    model.generation_config.bad_words_ids = [[pad]]
    model.generation_config.max_length = 64
    model.generation_config.num_beams = 1
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for file in work.iterdir():
        file.unlink()
    work.rmdir()
    return out


def build_pair(shared: Path, out: Path, steps: int = 400) -> tuple[Path, Path]:
    """English→German and German→English models."""
    pairs = load_pairs(shared)
    forward = train_marian(pairs, out / "en-de", "en", "de", steps)
    backward = train_marian([(t, s) for s, t in pairs], out / "de-en", "de", "en", steps)
    return forward, backward
