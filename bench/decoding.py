"""Which back-translation decoding deserves to be the default: speed and quality, side by side.

    .venv/bin/python bench/decoding.py [--sentences 300] [--speed-sentences 128] [--runs 3]

Each decoding (greedy, beam 2, beam 4, sampling at T=0.8, with n = 1 or 2 variants per record) is
measured twice:

* **quality** on a tiny *real* Marian pair (tests/helpers/tiny_marian.py, trained here on the
  Tatoeba pairs in ../shared/data) over ``--sentences`` of its English sentences: every variant
  the step produces, its round-trip chrF and all-MiniLM-L6-v2 cosine against the source, how many
  variants per record the step could make (a variant equal to the source or to an earlier variant
  does not count), and the share of them the default quality filter keeps (not identical, length
  ratio 0.5–2, English, MiniLM ≥ 0.7): **kept variants per record** is what a user gets;
* **speed** on the full-size random-weight opus-mt-shaped Marian of bench/backtranslate.py (fixed
  output length, so every decoding does the same number of steps): round trips per second,
  ``--runs`` alternating runs, median and spread, with a noise verdict.

The tiny model translates its own training sentences well and little else, so the quality columns
compare decodings with each other; they are not a claim about opus-mt's quality. Not a test; not
in CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "helpers"))
sys.path.insert(0, str(REPO / "bench"))

from backtranslate import corpusmill_rate, full_size_marian, sentences, train_records, unfiltered_step  # noqa: E402
from quiet import NoiseMonitor, spread  # noqa: E402

DECODINGS: dict[str, dict[str, Any]] = {
    "greedy, n=1": {"decoding": "greedy", "n": 1},
    "beam 2, n=1": {"decoding": "beam", "num_beams": 2, "n": 1},
    "beam 4, n=1": {"decoding": "beam", "num_beams": 4, "n": 1},
    "beam 4, n=2": {"decoding": "beam", "num_beams": 4, "n": 2},
    "sample T=0.8, n=1": {"decoding": "sample", "n": 1},
    "sample T=0.8, n=2": {"decoding": "sample", "n": 2},
}


def variants(pair: tuple[Path, Path], texts: list[str], cache: Path, decoding: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, variant) for every variant the step makes with no filter but "differs from the source"."""
    step = unfiltered_step(*pair, cache, **decoding)
    records = train_records(texts)
    by_id = {r.id: r.text for r in records}
    return [(by_id[v.parent_id], v.text) for v in step.run(records) if v.parent_id in by_id]


def quality_row(pairs: list[tuple[str, str]], records: int) -> dict[str, float]:
    from sacrebleu.metrics import CHRF

    from augment.quality import QualityFilter, QualityParams
    from corpusmill.embeddings import MiniLM

    chrf = CHRF()
    kept = sum(reason is None for reason, _ in QualityFilter(QualityParams(), "en").check(pairs))
    return {
        "made": len(pairs) / records,
        "chrf": statistics.fmean(chrf.sentence_score(v, [s]).score for s, v in pairs) if pairs else 0.0,
        "minilm": statistics.fmean(MiniLM().similarity(pairs)) if pairs else 0.0,
        "kept_share": kept / len(pairs) if pairs else 0.0,
        "kept": kept / records,
    }


def main() -> None:
    from tiny_marian import build_pair, load_pairs

    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--speed-sentences", type=int, default=128)
    parser.add_argument("--length", type=int, default=24)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=1500, help="of the tiny Marian (the tests use 400)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pair = build_pair(SHARED, work / "tiny", args.train_steps)
        english = [s for s, _ in load_pairs(SHARED)]
        picked = [s for s in english if len(s.split()) >= 5][: args.sentences]
        quality = {
            name: quality_row(variants(pair, picked, work / f"cache-{i}", decoding), len(picked))
            for i, (name, decoding) in enumerate(DECODINGS.items())
        }
        texts = sentences(args.speed_sentences)
        forward = full_size_marian(work / "en-de", "en", "de", args.length)
        backward = full_size_marian(work / "de-en", "de", "en", args.length)
        cache = work / "speed-cache"
        speed: dict[str, list[float]] = {name: [] for name in DECODINGS}
        corpusmill_rate(forward, backward, texts[:8], args.length, cache, decoding="greedy")  # converts both
        noise = NoiseMonitor()
        for _ in range(args.runs):
            for name, decoding in DECODINGS.items():
                speed[name].append(corpusmill_rate(forward, backward, texts, args.length, cache, **decoding))
        verdict = noise.verdict()
    print(
        f"quality: tiny real Marian, {len(picked)} Tatoeba sentences; speed: full-size Marian, "
        f"{len(texts)} sentences x {args.length} tokens each way"
    )
    print(
        "| decoding | round trips/s | variants made per record | round-trip chrF | MiniLM cosine "
        "| kept by the default filter | kept variants per record | kept variants/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in DECODINGS:
        q, rate = quality[name], statistics.median(speed[name])
        print(
            f"| {name} | {spread(speed[name])} | {q['made']:.2f} | {q['chrf']:.1f} | {q['minilm']:.3f} | "
            f"{q['kept_share']:.0%} | {q['kept']:.2f} | {rate * q['kept']:.1f} |"
        )
    print(verdict)


if __name__ == "__main__":
    main()
