"""The ``train``, ``chat``, ``generate`` and ``ablate`` commands (registered by :mod:`corpusmill.cli`);
the heavy imports (torch, transformers) happen inside each command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from corpusmill.console import fail, say, usage_error
from corpusmill.errors import CorpusmillError

TaskOption = Annotated[str, typer.Option("--task", help="classification or causal-lm.")]
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        help="'minilm' (bundled encoder), 'smollm2' (bundled chat LLM), a local dir, a .gguf file or a cached hub id.",
    ),
]

TrainConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML: hyperparameters, objective.")]


def _task(task: str) -> str:
    if task not in ("classification", "causal-lm"):
        raise usage_error("--task must be classification or causal-lm")
    return task


def train_command(
    release: Annotated[Path, typer.Argument(help="Release directory.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the model and the report.")],
    task: TaskOption = "classification",
    model: ModelOption = "minilm",
    config: TrainConfigOption = None,
    search: Annotated[Path | None, typer.Option("--search", help="YAML search space (grid or random).")] = None,
    merge: Annotated[bool, typer.Option(help="LoRA: also save the adapter merged into the base model.")] = False,
) -> None:
    """Fine-tune a pre-trained model on a release, choosing hyperparameters on validation."""
    from training import train
    from training.config import load_search_space, load_train_config

    try:
        report = train(
            release,
            _task(task),
            model,
            out,
            load_train_config(config),
            load_search_space(search) if search else None,
            merge=merge,
        )
    except CorpusmillError as exc:
        raise fail(exc) from None
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in report["test"]["metrics"].items())
    say(f"{len(report['search']['trials'])} trial(s) on validation; test: {metrics}")
    if report.get("base"):
        base = report["base"]["metrics"]
        tuned = report["test"]["metrics"]
        changes = ", ".join(f"{k} {base[k]:.4f} → {tuned[k]:.4f}" for k in tuned if k in base and k != "loss")
        say(f"base → tuned on test: {changes}")
    say(f"Report: {out / 'report.md'}\nModel:  {out / 'model'}")
    if report.get("merged"):
        say(f"Merged: {out / 'merged'}")


ChatModelOption = Annotated[
    str | None, typer.Option("--model", help="Without RUN_DIR: the base model ('smollm2', a dir or a .gguf file).")
]
RunDirArgument = Annotated[Path | None, typer.Argument(help="A training run (corpusmill train --out DIR).")]
MaxNewTokensOption = Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")]


def _chat_model(run_dir: Path | None, model: str | None) -> tuple[Any, Any]:
    """The model and tokenizer of a run, or of a base model: exactly one of the two is given."""
    from training.chat import load_chat_model

    if (run_dir is None) == (model is None):
        raise usage_error("give a RUN_DIR or --model, not both")
    try:
        return load_chat_model(run_dir, model)
    except CorpusmillError as exc:
        raise fail(exc) from None


def chat(
    run_dir: RunDirArgument = None,
    model: ChatModelOption = None,
    max_new_tokens: MaxNewTokensOption = 256,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
) -> None:
    """Talk to a trained chat model (or a base model) in the terminal; answers stream as generated."""
    import sys

    from training.chat import chat_session

    loaded, tokenizer = _chat_model(run_dir, model)
    chat_session(loaded, tokenizer, sys.stdin, sys.stdout, max_new_tokens, system)


def generate(
    run_dir: RunDirArgument = None,
    source: Annotated[Path, typer.Option("--in", help='JSONL of {"prompt": …} or {"messages": [...]}.')] = Path(
        "prompts.jsonl"
    ),
    out: Annotated[Path, typer.Option("--out", help="JSONL: each input line with its answer.")] = Path("answers.jsonl"),
    model: ChatModelOption = None,
    max_new_tokens: MaxNewTokensOption = 256,
) -> None:
    """Answer every prompt of a JSONL file (greedy), with a trained run or a base model."""
    from training.chat import generate_file

    loaded, tokenizer = _chat_model(run_dir, model)
    try:
        written = generate_file(loaded, tokenizer, source, out, max_new_tokens)
    except CorpusmillError as exc:
        raise fail(exc) from None
    say(f"{written} answers: {out}")


def ablate(
    release: Annotated[Path, typer.Argument(help="Release directory with augmented training records.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the ablation report.")],
    task: TaskOption = "classification",
    model: ModelOption = "minilm",
    config: TrainConfigOption = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "1,2,3",
) -> None:
    """Train with and without the augmented records over several seeds: did augmentation help?"""
    from training import ablate as run_ablation
    from training.config import load_train_config

    try:
        report = run_ablation(
            release, _task(task), model, out, load_train_config(config), [int(s) for s in seeds.split(",")]
        )
    except CorpusmillError as exc:
        raise fail(exc) from None
    for metric, summary in report["summary"].items():
        say(
            f"{metric}: with {summary['with_mean']:.4f}, without {summary['without_mean']:.4f}, "
            f"difference {summary['mean_difference']:+.4f} ± {summary['stdev']:.4f}"
        )
    say(f"Report: {out / 'ablation.md'}")
