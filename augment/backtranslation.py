"""Back-translation (source → pivot → source) with MarianMT models: the augmentation the seed
names, made fast (length-sorted token-budget batches across records, CTranslate2, a disk cache)
and trustworthy (no silent truncation, n distinct variants, a quality filter, provenance)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from augment.base import TextAugmenterParams, derive, texts_to_rewrite
from augment.quality import QualityFilter, QualityParams
from augment.sentences import SentenceSplitter, split_long
from augment.translate import (
    DEFAULT_CACHE,
    DecodeSettings,
    TranslationCache,
    Translator,
    load_backend,
    resolve_model,
)
from corpusmill.registry import register
from corpusmill.schema import Record
from corpusmill.steps import Augmenter
from corpusmill.validators import PathOrName


class Pivot(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    language: str = "de"
    forward: PathOrName = "Helsinki-NLP/opus-mt-en-de"
    """Hub id or local directory of the source → pivot model."""
    backward: PathOrName = "Helsinki-NLP/opus-mt-de-en"
    forward_token: str | None = None
    """Target token a multilingual forward model needs (``>>fr<<`` for opus-mt-en-ROMANCE)."""
    backward_token: str | None = None


class BackTranslationParams(TextAugmenterParams):
    pivots: list[Pivot] = Field(default_factory=lambda: [Pivot()], min_length=1)
    language: str = "en"
    backend: Literal["ctranslate2", "transformers"] = "ctranslate2"
    device: str = "auto"
    compute_type: str = "auto"
    """ctranslate2: int8 on CPU and float16 on CUDA when ``auto``; transformers: bfloat16 on CUDA."""
    decoding: Literal["auto", "greedy", "beam", "sample"] = "auto"
    """Of the forward pass (the backward pass is greedy). ``auto``: greedy for one variant, beam
    search (the n best of ``max(num_beams, n)`` beams) for more: in bench/decoding.py these keep
    the most variants per second, greedy within 2.1 chrF of beam 4, while sampling is 3.5x slower
    than greedy (seeded sampling runs on one CTranslate2 thread to stay reproducible) and keeps
    fewer variants. ``sample`` still gives the most diverse variants (UDA-style noise)."""
    num_beams: int = Field(default=4, ge=1)
    temperature: float = Field(default=0.8, gt=0)
    top_k: int = Field(default=0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_new_tokens: int = Field(default=256, ge=1)
    token_budget: int = Field(default=4096, ge=64)
    """Padded tokens per batch (batch size × longest input)."""
    cache_dir: Path | None = None
    allow_download: bool = False
    quality: QualityParams = Field(default_factory=QualityParams)


@register("backtranslate")
class BackTranslate(Augmenter):
    """Paraphrases by MarianMT round trips through pivot languages, filtered for meaning and change."""

    Params: ClassVar[type[BaseModel]] = BackTranslationParams
    lazy_attributes = ("translators", "splitter", "quality", "cache")
    batch_records = 256
    uses_model = True
    progress_metric = "sentences_translated"

    def __init__(self, seed: int = 0, **params: Any) -> None:
        super().__init__(seed=seed, **params)
        p: BackTranslationParams = self.params  # type: ignore[assignment]
        # Resolve (not load) every model now: a missing model fails the build before any work.
        self.models = {
            pivot.language: {
                "forward": resolve_model(pivot.forward, p.allow_download),
                "backward": resolve_model(pivot.backward, p.allow_download),
            }
            for pivot in p.pivots
        }

    @property
    def cache_dir(self) -> Path:
        return self.params.cache_dir or DEFAULT_CACHE  # type: ignore[attr-defined]

    def setup(self) -> None:
        p: BackTranslationParams = self.params  # type: ignore[assignment]
        self.cache = TranslationCache(self.cache_dir / "translations.sqlite")
        self.translators: dict[str, tuple[Translator, Translator]] = {}
        for pivot in p.pivots:
            pair = []
            for side, prefix in (("forward", pivot.forward_token), ("backward", pivot.backward_token)):
                path, fingerprint = self.models[pivot.language][side]
                backend = load_backend(
                    p.backend, path, fingerprint, p.device, p.compute_type, self.cache_dir, p.token_budget
                )
                direction = (
                    f"{side}:{p.language}-{pivot.language}"
                    if side == "forward"
                    else f"{side}:{pivot.language}-{p.language}"
                )
                pair.append(
                    Translator(
                        backend, fingerprint, direction, self.cache, p.token_budget, f"{prefix} " if prefix else ""
                    )
                )
            self.translators[pivot.language] = (pair[0], pair[1])
        self.splitter = SentenceSplitter(p.language)
        self.quality = QualityFilter(p.quality, p.language)

    def settings(self) -> tuple[DecodeSettings, DecodeSettings]:
        p: BackTranslationParams = self.params  # type: ignore[assignment]
        strategy = p.decoding if p.decoding != "auto" else ("greedy" if p.n == 1 else "beam")
        forward = DecodeSettings(
            strategy=strategy,
            num_beams=p.num_beams,
            temperature=p.temperature,
            top_k=p.top_k,
            top_p=p.top_p,
            n=p.n,
            max_new_tokens=p.max_new_tokens,
            seed=self.seed,
        )
        backward = DecodeSettings(strategy="greedy", max_new_tokens=p.max_new_tokens, seed=self.seed)
        return forward, backward

    def augment(self, record: Record) -> Iterable[Record]:
        return self.augment_batch([record])[0]

    def _pieces(self, text: str, translator: Translator) -> tuple[str, list[tuple[list[str], str]]] | None:
        """(leading whitespace, [(sentence parts, trailing whitespace)]); None if a sentence is too long."""
        limit = translator.backend.max_source_tokens - 2
        leading, pieces = self.splitter.split(text)
        out = []
        for piece in pieces:
            parts = split_long(piece.text, lambda s: translator.backend.token_length(s) > limit)
            if parts is None:
                return None
            out.append((parts, piece.trailing))
        return leading, out

    def augment_batch(self, records: list[Record]) -> list[list[Record]]:
        p: BackTranslationParams = self.params  # type: ignore[assignment]
        forward_settings, backward_settings = self.settings()
        first_forward = self.translators[p.pivots[0].language][0]
        layouts: dict[int, list[tuple[str, list[tuple[list[str], str]]]]] = {}
        for index, record in enumerate(records):
            texts = texts_to_rewrite(record, p.roles)
            split = [self._pieces(text, first_forward) for text in texts]
            if not texts or any(s is None for s in split):
                self.stats.metrics["skipped.sentence_too_long" if texts else "skipped.nothing_to_rewrite"] += 1
                continue
            layouts[index] = split  # type: ignore[assignment]
        sentences = list(
            dict.fromkeys(
                part for layout in layouts.values() for _, pieces in layout for parts, _ in pieces for part in parts
            )
        )
        variants_by_pivot: dict[str, dict[str, list[str]]] = {}
        for pivot in p.pivots:
            forward, backward = self.translators[pivot.language]
            pivoted = forward.translate(sentences, forward_settings)
            flat = [h for hyps in pivoted for h in hyps]
            back = backward.translate(flat, backward_settings)
            back_iter = iter(back)
            table: dict[str, list[str]] = {}
            for sentence, hypotheses in zip(sentences, pivoted, strict=True):
                returned = [next(back_iter) for _ in hypotheses]
                table[sentence] = [r[0] for r in returned if r]
            variants_by_pivot[pivot.language] = table
            self.stats.metrics["sentences_translated"] += forward.sentences_translated + backward.sentences_translated
            forward.sentences_translated = backward.sentences_translated = 0
        candidates: list[tuple[int, str, list[str]]] = []
        for index, layout in layouts.items():
            seen = {tuple(texts_to_rewrite(records[index], p.roles))}
            for pivot in p.pivots:
                table = variants_by_pivot[pivot.language]
                if any(not table[part] for _, pieces in layout for parts, _ in pieces for part in parts):
                    self.discard("pivot_too_long", records[index])  # a sentence the backward model cannot take
                    continue
                for k in range(p.n):
                    texts = assemble(layout, table, k)
                    if tuple(texts) in seen:
                        self.stats.metrics["variants_shortfall"] += 1
                        continue
                    seen.add(tuple(texts))
                    candidates.append((index, pivot.language, texts))
        pairs = [
            (orig, new)
            for index, _, texts in candidates
            for orig, new in zip(texts_to_rewrite(records[index], p.roles), texts, strict=True)
        ]
        verdicts = iter(self.quality.check(pairs))
        out: list[list[Record]] = [[] for _ in records]
        for index, language, texts in candidates:
            checks = [next(verdicts) for _ in texts]
            reason = next((r for r, _ in checks if r is not None), None)
            scores = [s for _, s in checks if s is not None]
            if reason is not None:
                self.discard(reason, records[index], texts, round(min(scores), 4) if scores else None)
                continue
            out[index].append(
                derive(records[index], len(out[index]), "bt", self._provenance(language, scores), texts, p.roles)
            )
        return out

    def _provenance(self, language: str, scores: list[float]) -> dict[str, Any]:
        p: BackTranslationParams = self.params  # type: ignore[assignment]
        forward, _ = self.settings()
        models = self.models[language]
        return {
            "method": "backtranslation",
            "pivot": language,
            "models": {
                side: {
                    "model": getattr(next(x for x in p.pivots if x.language == language), side),
                    "fingerprint": models[side][1],
                }
                for side in ("forward", "backward")
            },
            "backend": p.backend,
            "decoding": forward.model_dump(),
            "similarity": round(min(scores), 4) if scores else None,
            "similarity_metric": p.quality.similarity,
        }


def assemble(layout: list[tuple[str, list[tuple[list[str], str]]]], table: dict[str, list[str]], k: int) -> list[str]:
    """The k-th variant of each text: its sentences' k-th translations, in the original layout.

    A sentence with fewer distinct translations than k reuses its last one.
    """
    texts = []
    for leading, pieces in layout:
        body = "".join(
            " ".join(table[part][min(k, len(table[part]) - 1)] for part in parts) + trailing
            for parts, trailing in pieces
        )
        texts.append(leading + body)
    return texts
