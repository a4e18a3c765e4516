"""Machine translation for back-translation: two backends, length-sorted token-budget batches,
sentence splitting for long texts, and a disk cache.

* ``transformers``: ``AutoModelForSeq2SeqLM`` (MarianMT) under ``torch.inference_mode``, on CPU or
  CUDA (fp16/bf16 there).
* ``ctranslate2``: the same model converted once with CTranslate2's converter into a cache
  directory keyed by the model's fingerprint; int8 on CPU, float16 on CUDA. On 2 cores,
  ``inter_threads=2 × intra_threads=1`` was measured fastest.

Models are resolved by :func:`corpusmill.models.resolve_model` (local directory, or a hub id
already in the Hugging Face cache; nothing is downloaded unless ``allow_download`` is set).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from corpusmill.models import ModelUnavailable, resolve_model

__all__ = ["ModelUnavailable", "resolve_model"]

SUB_BATCHES_PER_THREAD = 2
"""Greedy and beam batches are cut into this many sub-batches per CTranslate2 inter-thread."""

DEFAULT_CACHE = Path(os.environ.get("CORPUSMILL_CACHE", Path.home() / ".cache" / "corpusmill"))


class DecodeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    num_beams: int = Field(default=4, ge=1)
    temperature: float = Field(default=1.0, gt=0)
    top_k: int = Field(default=0, ge=0)
    """Sampling from the k most likely tokens (0: all)."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1)
    """Hypotheses per input (beam: the n best; sampling: n samples; greedy: 1)."""
    max_new_tokens: int = Field(default=256, ge=1)
    min_new_tokens: int = Field(default=0, ge=0)
    seed: int = 0


class TranslationCache:
    """sqlite: key (text, model fingerprint, direction, decoding settings) → hypotheses."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("CREATE TABLE IF NOT EXISTS translations (key TEXT PRIMARY KEY, value TEXT)")
        self.hits = self.misses = 0

    @staticmethod
    def key(text: str, fingerprint: str, direction: str, settings: DecodeSettings) -> str:
        payload = json.dumps([fingerprint, direction, settings.model_dump(), text], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, value in self.connection.execute(
                f"SELECT key, value FROM translations WHERE key IN ({marks})", chunk
            ):
                found[key] = json.loads(value)
        self.hits += len(found)
        self.misses += len(set(keys) - set(found))
        return found

    def put_many(self, items: dict[str, list[str]]) -> None:
        self.connection.execute("BEGIN")
        self.connection.executemany(
            "INSERT OR REPLACE INTO translations VALUES (?, ?)",
            [(key, json.dumps(value, ensure_ascii=False)) for key, value in items.items()],
        )
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()


class Backend:
    """One loaded model; ``generate`` turns a batch of texts into ``n`` hypotheses each."""

    def __init__(self, path: str, device: str) -> None:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

        self.path = path
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.token_ids = functools.lru_cache(maxsize=1 << 16)(self._token_ids)
        """Memoised: the sentence splitter's length check, the model-limit filter, the batching
        and the engine all tokenise the same sentence; once is enough (was 4x per sentence)."""

    def _token_ids(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text)["input_ids"])

    def token_length(self, text: str) -> int:
        return len(self.token_ids(text))

    @functools.cached_property
    def max_source_tokens(self) -> int:
        """Positions the model has (its inputs and its outputs are both bounded by them)."""
        from transformers import AutoConfig

        limit = getattr(AutoConfig.from_pretrained(self.path), "max_position_embeddings", 512)
        return min(limit, self.tokenizer.model_max_length or limit)

    def max_new_tokens(self, settings: DecodeSettings) -> int:
        return min(settings.max_new_tokens, self.max_source_tokens - 1)

    def batches_itself(self, settings: DecodeSettings) -> bool:
        """Whether one call may carry every input: the backend sorts and cuts them itself."""
        return False

    def generate(self, texts: list[str], settings: DecodeSettings) -> list[list[str]]:
        raise NotImplementedError


class TransformersBackend(Backend):
    def __init__(self, path: str, device: str, dtype: str = "auto") -> None:
        import torch
        from transformers import AutoModelForSeq2SeqLM

        super().__init__(path, device)
        torch_dtype = torch.float32
        if device.startswith("cuda"):
            torch_dtype = torch.bfloat16 if dtype in ("auto", "bfloat16") else torch.float16
        self.model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=torch_dtype).to(device).eval()

    def generate(self, texts: list[str], settings: DecodeSettings) -> list[list[str]]:
        import torch

        n = 1 if settings.strategy == "greedy" else settings.n
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens(settings),
            "min_new_tokens": settings.min_new_tokens or None,
            "num_return_sequences": n,
            "num_beams": max(settings.num_beams, n) if settings.strategy == "beam" else 1,
            "do_sample": settings.strategy == "sample",
        }
        if settings.strategy == "sample":
            kwargs.update(temperature=settings.temperature, top_k=settings.top_k or None, top_p=settings.top_p)
            torch.manual_seed(settings.seed)
        batch = self.tokenizer(texts, return_tensors="pt", padding=True).to(self.device)
        with torch.inference_mode():
            output = self.model.generate(**batch, **kwargs)
        decoded = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        return [decoded[i * n : (i + 1) * n] for i in range(len(texts))]


class CTranslate2Backend(Backend):
    def __init__(
        self,
        path: str,
        fingerprint: str,
        device: str,
        compute_type: str = "auto",
        inter_threads: int | None = None,
        intra_threads: int = 1,
        cache_dir: Path = DEFAULT_CACHE,
        token_budget: int = 4096,
    ) -> None:
        import ctranslate2

        super().__init__(path, device)
        self.token_budget = token_budget
        converted = self.convert(path, fingerprint, cache_dir)
        if compute_type == "auto":
            compute_type = "float16" if device.startswith("cuda") else "int8"
        self.inter_threads = inter_threads or max(1, os.cpu_count() or 1)
        self.translator = ctranslate2.Translator(
            str(converted),
            device="cuda" if device.startswith("cuda") else "cpu",
            compute_type=compute_type,
            inter_threads=self.inter_threads,
            intra_threads=intra_threads,
        )

    @staticmethod
    def convert(path: str, fingerprint: str, cache_dir: Path) -> Path:
        """Convert once per model fingerprint (float32; the compute type is chosen at load)."""
        from ctranslate2.converters import TransformersConverter

        target = cache_dir / "ct2" / hashlib.sha256(fingerprint.encode()).hexdigest()[:24]
        if (target / "model.bin").exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
        try:
            TransformersConverter(path).convert(str(tmp / "model"), force=True)
            os.replace(tmp / "model", target)
        except OSError:
            if not (target / "model.bin").exists():  # another process finished first otherwise
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def batches_itself(self, settings: DecodeSettings) -> bool:
        """Greedy and beam search: CTranslate2 sorts one call's inputs by length and cuts them
        itself, and its threads take the sub-batches as they free up (one call per budget-sized
        batch left threads idle at each call's end: 0.88x the raw engine in
        bench/backtranslate.py). Seeded sampling keeps the Translator's batches."""
        return settings.strategy != "sample"

    def generate(self, texts: list[str], settings: DecodeSettings) -> list[list[str]]:
        import ctranslate2

        tokens = [self.tokenizer.convert_ids_to_tokens(list(self.token_ids(t))) for t in texts]
        n = 1 if settings.strategy == "greedy" else settings.n
        kwargs: dict[str, Any] = {
            "max_decoding_length": self.max_new_tokens(settings),
            "min_decoding_length": settings.min_new_tokens,
            "num_hypotheses": n,
            "beam_size": max(settings.num_beams, n) if settings.strategy == "beam" else 1,
            "return_scores": False,
        }
        if settings.strategy == "sample":
            ctranslate2.set_random_seed(settings.seed)
            kwargs.update(
                sampling_topk=settings.top_k, sampling_temperature=settings.temperature, sampling_topp=settings.top_p
            )
        else:
            # A batch handed over whole runs on one of CTranslate2's inter-threads while the others
            # idle; cut it (CTranslate2 sorts by length first) into at least two sub-batches per
            # thread, so that a thread done early takes the next one (one per thread was 1.3x
            # slower on 128 sentences: the shorter half finishes first and its thread idles), and
            # none padded past the token budget. Counted in sentences, not tokens: decoding, the
            # bulk of the work, grows with sentences. Only for greedy and beam search, whose output
            # does not depend on which thread decodes what; seeded sampling stays whole.
            spread = -(-len(tokens) // (SUB_BATCHES_PER_THREAD * self.inter_threads))
            kwargs["max_batch_size"] = max(1, min(spread, self.token_budget // max(map(len, tokens))))
        results = self.translator.translate_batch(tokens, **kwargs)
        return [[self.tokenizer.convert_tokens_to_string(h) for h in result.hypotheses] for result in results]


class Translator:
    """One translation direction: cache first, then length-sorted token-budget batches."""

    def __init__(
        self,
        backend: Backend,
        fingerprint: str,
        direction: str,
        cache: TranslationCache | None,
        token_budget: int = 4096,
        prefix: str = "",
    ) -> None:
        self.backend = backend
        self.fingerprint = fingerprint
        self.direction = direction
        self.cache = cache
        self.token_budget = token_budget
        self.prefix = prefix
        """``>>xx<<`` target token for multilingual models (opus-mt-en-ROMANCE)."""
        self.sentences_translated = 0

    def batches(self, texts: list[str]) -> list[list[int]]:
        """Indices of ``texts`` sorted by token length and cut so that padded batches fit the budget."""
        lengths = [self.backend.token_length(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            if current and (len(current) + 1) * lengths[index] > self.token_budget:
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def translate(self, texts: Sequence[str], settings: DecodeSettings) -> list[list[str]]:
        """``n`` hypotheses for each text, in the input's order; none for a text longer than the
        model takes (never truncated: the caller decides what to do without it)."""
        limit = self.backend.max_source_tokens
        unique = [t for t in dict.fromkeys(texts) if self.backend.token_length(self.prefix + t) <= limit]
        keys = {t: TranslationCache.key(t, self.fingerprint, self.direction, settings) for t in unique}
        found = self.cache.get_many(list(keys.values())) if self.cache else {}
        results = {t: found[keys[t]] for t in unique if keys[t] in found}
        missing = [t for t in unique if t not in results]
        fresh: dict[str, list[str]] = {}
        if missing and self.backend.batches_itself(settings):
            batches = [list(range(len(missing)))]
        else:
            batches = self.batches(missing)
        for batch in batches:
            inputs = [self.prefix + missing[i] for i in batch]
            for i, hypotheses in zip(batch, self.backend.generate(inputs, settings), strict=True):
                fresh[missing[i]] = hypotheses
        self.sentences_translated += len(fresh)
        if self.cache and fresh:
            self.cache.put_many({keys[t]: h for t, h in fresh.items()})
        results.update(fresh)
        return [results.get(t, []) for t in texts]


def load_backend(
    kind: str, path: str, fingerprint: str, device: str, compute_type: str, cache_dir: Path, token_budget: int = 4096
) -> Backend:
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "ctranslate2":
        return CTranslate2Backend(
            path, fingerprint, device, compute_type, cache_dir=cache_dir, token_budget=token_budget
        )
    return TransformersBackend(path, device, compute_type)
