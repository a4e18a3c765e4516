"""LoRA fine-tuning throughput: corpusmill's trainer against TRL's SFTTrainer, same model, data,
LoRA config and batch size, in one run.

    .venv/bin/pip install trl   # benchmark only; not a project dependency
    .venv/bin/python bench/sft.py [--records 64] [--steps 12] [--runs 3]

Both train SmolLM2-135M-Instruct (the packaged GGUF, materialised once) with LoRA r=16 on every
linear projection, batch 4, at most 256 tokens, no packing, no gradient checkpointing, for the
same number of optimizer steps on the same chat records (a corpusmill release built here from the
Taskmaster dialogues in ../shared/data). Each run is a fresh child process, peer and ours
alternating; reported: training tokens per second inside the training loop (Trainer's
``train_runtime`` and its count of non-padding input tokens, the same for both) and peak RSS, the
median and spread over runs, the ratio ours / TRL, and a noise verdict: the CPU time every other
process used while the runs went on (more than 0.2 of a core means the numbers are not a result).
Not a test; not in CI.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from quiet import NoiseMonitor, spread  # noqa: E402


def build_release(out: Path, records: int) -> Path:
    """A chat release from real Taskmaster dialogues: user turn → assistant turn pairs."""
    from corpusmill.config import load_config
    from corpusmill.executor import LocalExecutor

    source = next((SHARED / "dialogue" / "taskmaster").glob("*.json"))
    dialogues = json.loads(source.read_text(encoding="utf-8"))
    chats = []
    for dialogue in dialogues:
        turns = dialogue.get("utterances") or dialogue.get("turns") or []
        for first, second in itertools.pairwise(turns):
            speaker = (first.get("speaker") or "").upper()
            if speaker == "USER" and (second.get("speaker") or "").upper() in ("ASSISTANT", "SYSTEM"):
                chats.append(
                    {
                        "messages": [
                            {"role": "user", "content": first["text"]},
                            {"role": "assistant", "content": second["text"]},
                        ]
                    }
                )
            if len(chats) >= records * 2:
                break
        if len(chats) >= records * 2:
            break
    (out / "chats.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats), encoding="utf-8")
    config = out / "build.yaml"
    config.write_text(
        "sources: [{type: jsonl, path: chats.jsonl, messages: messages}]\n"
        "clean: [{step: exact_dedup}]\n"
        "release: {name: sft-bench, version: '1', output_dir: releases}\n",
        encoding="utf-8",
    )
    return LocalExecutor(load_config(config), workers=1).build().release_dir


def ours(release: Path, steps: int, out: Path) -> dict[str, float]:
    from training import train
    from training.config import Hyperparameters, TrainConfig

    config = TrainConfig(
        method="lora",
        hyperparameters=Hyperparameters(
            learning_rate=2e-4, epochs=1, batch_size=4, max_length=256, lora_r=16, lora_alpha=32, max_steps=steps
        ),
        generation_samples=0,
        compare_base=False,
    )
    training = train(release, "causal-lm", "smollm2", out, config)["training"]
    return {"seconds": training["seconds"], "tokens": training["tokens"]}


def trl(release: Path, steps: int, out: Path) -> dict[str, float]:
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from training.models import resolve_base_model

    path = resolve_base_model("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    train = datasets.load_dataset(str(release))["train"].select_columns(["messages"])
    config = SFTConfig(
        output_dir=str(out),
        learning_rate=2e-4,
        per_device_train_batch_size=4,
        max_steps=steps,
        max_length=256,
        packing=False,
        gradient_checkpointing=False,  # TRL turns it on by default; corpusmill's Trainer does not
        bf16=False,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_steps=steps,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
    )
    seconds = trainer.train().metrics["train_runtime"]
    return {"seconds": seconds, "tokens": trainer.state.num_input_tokens_seen}


def child(kind: str, release: Path, steps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = (ours if kind == "ours" else trl)(release, steps, Path(tmp))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "RELEASE"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.steps)
        return
    with tempfile.TemporaryDirectory() as tmp:
        release = build_release(Path(tmp), args.records)
        noise = NoiseMonitor()
        results: dict[str, list[dict[str, float]]] = {"trl": [], "ours": []}
        for _ in range(args.runs):
            for kind in ("trl", "ours"):
                command = [sys.executable, __file__, "--steps", str(args.steps), "--child", kind, str(release)]
                output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                results[kind].append(json.loads(output.strip().splitlines()[-1]))
    rates = {kind: [r["tokens"] / r["seconds"] for r in runs] for kind, runs in results.items()}
    for kind, values in rates.items():
        rss = statistics.median(r["peak_rss_mb"] for r in results[kind])
        print(f"{kind:>5}: {spread(values, ' tokens/s')}, peak RSS {rss:.0f} MB")
    print(f"ours / TRL: {spread([o / t for o, t in zip(rates['ours'], rates['trl'], strict=True)], 'x')}")
    print(noise.verdict())


if __name__ == "__main__":
    main()
