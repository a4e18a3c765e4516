"""The ``train``, ``chat``, ``generate`` and ``ablate`` commands (registered by :mod:`corpusmill.cli`);
the heavy imports (torch, transformers) happen inside each command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from corpusmill.console import fail, say, usage_error
from corpusmill.errors import CorpusmillError

TaskOption = Annotated[str, typer.Option("--task", help="classification, multi-task or causal-lm.")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="'minilm' (bundled encoder), 'smollm2' (bundled chat LLM), a local dir, a .gguf file or a cached hub id "
        "[default: minilm, or the --init-from run's base model].",
    ),
]
InitFromOption = Annotated[
    Path | None,
    typer.Option("--init-from", help="Start from this earlier run's weights (a corpusmill train --out DIR)."),
]
TextOption = Annotated[
    str | None,
    typer.Option(
        "--objective",
        help="causal-lm: 'lm' (next-token loss on the plain-text records: domain-adaptive continued "
        "pre-training), 'chat' (chat records, loss on assistant turns) or 'auto' (both) [default: the config's].",
    ),
]

TrainConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML: hyperparameters, objective.")]


def _task(task: str) -> str:
    if task not in ("classification", "multi-task", "causal-lm"):
        raise usage_error("--task must be classification, multi-task or causal-lm")
    return task


TEXT_FIELDS = {"lm": "text", "chat": "messages", "auto": "auto"}


def _config(path: Path | None, objective: str | None) -> Any:
    """The train config, with ``--objective`` choosing which records a causal-lm run reads."""
    from training.config import load_train_config

    config = load_train_config(path)
    if objective is None:
        return config
    if objective not in TEXT_FIELDS:
        raise usage_error("--objective must be lm, chat or auto")
    return config.model_copy(update={"text_field": TEXT_FIELDS[objective]})


def train_command(
    release: Annotated[Path, typer.Argument(help="Release directory.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the model and the report.")],
    task: TaskOption = "classification",
    model: ModelOption = None,
    config: TrainConfigOption = None,
    search: Annotated[Path | None, typer.Option("--search", help="YAML search space (grid or random).")] = None,
    merge: Annotated[bool, typer.Option(help="LoRA: also save the adapter merged into the base model.")] = False,
    init_from: InitFromOption = None,
    objective: TextOption = None,
) -> None:
    """Fine-tune a pre-trained model (or an earlier run's) on a release, choosing hyperparameters on validation."""
    from training import train
    from training.config import load_search_space

    try:
        report = train(
            release,
            _task(task),
            model,
            out,
            _config(config, objective),
            load_search_space(search) if search else None,
            merge=merge,
            init_from=init_from,
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
    release: Annotated[Path, typer.Argument(help="Release directory.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the ablation report.")],
    task: TaskOption = "classification",
    model: ModelOption = None,
    config: TrainConfigOption = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "1,2,3",
    init_from: Annotated[
        Path | None,
        typer.Option(
            "--init-from", help="Compare starting from this earlier run against starting from the base model."
        ),
    ] = None,
    tasks: Annotated[
        bool,
        typer.Option(
            "--tasks", help="Train each of the config's tasks alone and all together (multi-task, causal-lm)."
        ),
    ] = False,
    objective: TextOption = None,
) -> None:
    """What did it buy? Augmentation (with and without the augmented records), transfer
    (--init-from) or multi-task learning (--tasks), over several seeds on the same test split."""
    from training import ablate as run_ablation
    from training import ablate_init, ablate_tasks

    if init_from is not None and tasks:
        raise usage_error("--init-from and --tasks ablate different things: give one")
    if tasks and task not in ("multi-task", "causal-lm"):
        raise usage_error("--tasks needs --task multi-task (or causal-lm with tasks in its config)")
    seed_list = [int(s) for s in seeds.split(",")]
    try:
        train_config = _config(config, objective)
        if tasks:
            report = ablate_tasks(release, task, model, out, train_config, seed_list)
        elif init_from is not None:
            report = ablate_init(release, _task(task), model, out, train_config, seed_list, init_from)
        else:
            report = run_ablation(release, _task(task), model, out, train_config, seed_list)
    except CorpusmillError as exc:
        raise fail(exc) from None
    if tasks:
        for metrics in report["summary"].values():
            for metric, s in metrics.items():
                say(
                    f"{metric}: alone {s['alone_mean']:.4f}, together {s['together_mean']:.4f}, "
                    f"difference {s['mean_difference']:+.4f} ± {s['stdev']:.4f}"
                )
    else:
        first, second = ("init", "base") if init_from is not None else ("with", "without")
        for metric, s in report["summary"].items():
            say(
                f"{metric}: {first} {s[f'{first}_mean']:.4f}, {second} {s[f'{second}_mean']:.4f}, "
                f"difference {s['mean_difference']:+.4f} ± {s['stdev']:.4f}"
            )
    say(f"Report: {out / 'ablation.md'}")
