"""Talking to a trained chat model (or its base model): a terminal chat and batch generation.

A run directory holds ``model/`` — a LoRA adapter (``adapter_config.json``, loaded over the base
model it names) or a full model — and ``merged/`` when the run was merged. A model name or path
(``--model smollm2``) gives the base model, so a person can compare the two by hand.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from corpusmill.errors import InputError
from training.evaluation import context_budget, generate_answers
from training.models import check_kind, resolve_base_model
from training.tasks import render_chat


def load_chat_model(run_dir: Path | None, model: str | None) -> tuple[Any, Any]:
    """(model, tokenizer) from a run directory, or from a base model name or path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if run_dir is not None:
        model_dir = run_dir / "model" if (run_dir / "model").is_dir() else run_dir
        if (model_dir / "adapter_config.json").is_file():
            from peft import PeftModel

            base = json.loads((model_dir / "adapter_config.json").read_text(encoding="utf-8"))
            base_path = base["base_model_name_or_path"]
            loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), str(model_dir))
        elif (model_dir / "config.json").is_file():
            check_kind(str(run_dir), str(model_dir), "causal-lm")
            loaded = AutoModelForCausalLM.from_pretrained(str(model_dir))
        else:
            raise InputError(str(run_dir), "not a training run (no model/ with an adapter or a model)")
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    else:
        name = model or "smollm2"
        path = resolve_base_model(name)
        check_kind(name, path, "causal-lm")
        loaded, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return loaded.eval(), tokenizer


def stream_answer(model: Any, tokenizer: Any, messages: list[dict[str, str]], max_new_tokens: int, out: IO[str]) -> str:
    """Greedy answer to the conversation, written to ``out`` as it is generated."""
    import torch
    from transformers import TextIteratorStreamer

    max_prompt, max_answer = context_budget(model, max_new_tokens)
    text = render_chat(tokenizer, messages, add_generation_prompt=True)
    tokenizer.truncation_side = "left"  # a long conversation keeps its latest turns
    inputs = tokenizer(
        text, return_tensors="pt", add_special_tokens=False, truncation=max_prompt is not None, max_length=max_prompt
    ).to(model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    arguments = {
        **inputs,
        "streamer": streamer,
        "max_new_tokens": max_answer,
        "do_sample": False,
        "pad_token_id": tokenizer.pad_token_id,
    }

    def generate() -> None:
        with torch.inference_mode():
            model.generate(**arguments)

    worker = threading.Thread(target=generate, daemon=True)
    worker.start()
    pieces = []
    for piece in streamer:
        pieces.append(piece)
        out.write(piece)
        out.flush()
    worker.join()
    out.write("\n")
    return "".join(pieces).strip()


def chat_session(
    model: Any, tokenizer: Any, lines: Iterable[str], out: IO[str], max_new_tokens: int, system: str | None
) -> int:
    """Read user turns from ``lines`` until EOF or ``/quit``; ``/reset`` forgets the conversation,
    ``/system TEXT`` sets the system prompt (and resets). Returns the number of answers."""
    system_prompt = system
    messages: list[dict[str, str]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    answered = 0
    out.write(
        "Chat with the model: /reset forgets the conversation, /system TEXT sets the system prompt, /quit ends.\n"
    )
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line == "/quit":
            break
        if line == "/reset" or line.startswith("/system"):
            if line.startswith("/system"):
                system_prompt = line.removeprefix("/system").strip() or None
            messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
            out.write("(new conversation)\n")
            continue
        messages.append({"role": "user", "content": line})
        out.write("assistant> ")
        answer = stream_answer(model, tokenizer, messages, max_new_tokens, out)
        messages.append({"role": "assistant", "content": answer})
        answered += 1
    return answered


def generate_file(model: Any, tokenizer: Any, source: Path, out: Path, max_new_tokens: int) -> int:
    """One answer per line of ``source``: ``{"prompt": "…"}`` or ``{"messages": [...]}``."""
    from corpusmill.io import atomic_write

    conversations, rows = [], []
    with source.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{source}:{number}", f"invalid JSON: {exc.msg}") from None
            if isinstance(row, dict) and isinstance(row.get("prompt"), str):
                conversations.append([{"role": "user", "content": row["prompt"]}])
            elif isinstance(row, dict) and isinstance(row.get("messages"), list):
                conversations.append([{"role": m["role"], "content": m["content"]} for m in row["messages"]])
            else:
                raise InputError(f"{source}:{number}", 'expected {"prompt": TEXT} or {"messages": [...]}')
            rows.append(row)
    if not rows:
        raise InputError(str(source), "empty input: no prompts")
    answers = generate_answers(model, tokenizer, conversations, max_new_tokens)
    with atomic_write(out) as handle:
        for row, answer in zip(rows, answers, strict=True):
            handle.write(json.dumps({**row, "answer": answer}, ensure_ascii=False) + "\n")
    return len(answers)
