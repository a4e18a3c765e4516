"""The ``corpusmill`` command line: each command parses its options, hands them to the library
and prints the outcome (:mod:`corpusmill.console`). ``import``, ``clean``, ``split`` and
``augment`` are partial pipelines (:mod:`corpusmill.partial`) run by the build's executor;
``crawl`` and the training commands live with their stage packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from corpusmill import __version__
from corpusmill.commands import demo, release_app, schema, serve, steps
from corpusmill.config import load_config
from corpusmill.console import (
    WorkersOption,
    console,
    fail,
    print_resumed,
    print_split,
    print_steps,
    print_summary,
    reasons,
    say,
    usage_error,
)
from corpusmill.errors import CorpusmillError
from corpusmill.executor import LocalExecutor
from crawlers.cli import crawl
from training.cli import ablate, chat, generate, train_command

# rich_markup_mode=None: help texts are plain text, so "[default: cores]" is shown, not eaten as markup.
app = typer.Typer(
    help="Crawl, import, clean, split and augment text into versioned training releases.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        say(f"corpusmill {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """corpusmill: one reproducible path from a website or dataset to an evaluated model."""


@app.command()
def build(
    config: Annotated[Path, typer.Argument(help="Build config (YAML).")],
    workers: WorkersOption = None,
    executor: Annotated[str, typer.Option(help="local, or ray (the same steps and bytes on a Ray cluster).")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray: 'auto' or ray://host:10001 [default: start one].")] = None,
    num_gpus: Annotated[float, typer.Option(help="Ray: GPUs per model worker (back-translation).")] = 0,
) -> None:
    """Run every step of a build config and write the release."""
    if executor not in ("local", "ray"):
        raise usage_error("--executor must be local or ray")
    try:
        build_config = load_config(config)
        if executor == "ray":
            from corpusmill.ray_executor import RayExecutor

            result = RayExecutor(build_config, workers, address, num_gpus, console).build()
        else:
            result = LocalExecutor(build_config, workers=workers, console=console).build()
    except CorpusmillError as exc:
        raise fail(exc) from None
    print_summary(result)


app.command()(crawl)

InputFormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        help="Input format: csv, tsv, jsonl, json, parquet, hf, openai, sharegpt, alpaca, prompt-completion, "
        "warc, dir, records [default: detected].",
    ),
]
ReadOption = Annotated[
    list[str] | None,
    typer.Option(
        "--read",
        help="An importer option KEY=VALUE, as in a build config's source: text=body, label=category… (repeatable).",
    ),
]


def _partial(
    source: Path, format: str, read: list[str] | None, steps: Any, out: Path, workers: int | None, **kw: Any
) -> tuple[Any, Any]:
    """Run a partial pipeline, a reader of ``source`` then ``steps()`` (called here, so that a bad
    step spec fails like bad input: one line and its exit code); its reader and result."""
    from corpusmill.partial import assignments, input_reader, run_partial

    named, seed, splits = kw.pop("named", {}), kw.pop("seed", 0), kw.pop("splits", None)
    try:
        reader = input_reader(source, format, {**named, **assignments(read or [], "--read")}, **kw)
        result = run_partial([reader, *steps()], out, workers, console, seed, splits=splits)
    except CorpusmillError as exc:
        raise fail(exc) from None
    print_resumed(result)
    return reader, result


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="File, directory, or a Hugging Face hub id.")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL of records.")],
    format: InputFormatOption = "auto",
    text: Annotated[str | None, typer.Option(help="Column with the text [default: text].")] = None,
    messages: Annotated[str | None, typer.Option(help="Column with chat messages.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Column with the user's turn (chat, with --response).")] = None,
    response: Annotated[str | None, typer.Option(help="Column with the assistant's reply.")] = None,
    turns: Annotated[str | None, typer.Option(help="Dotted key path to each row's dialogue turns.")] = None,
    role_key: Annotated[str | None, typer.Option(help="Key of a turn's speaker [default: role].")] = None,
    content_key: Annotated[str | None, typer.Option(help="Key of a turn's text [default: content].")] = None,
    roles: Annotated[str | None, typer.Option(help="Speakers to chat roles: USER=user,SYSTEM=assistant.")] = None,
    system: Annotated[str | None, typer.Option(help="A system prompt to put first in each chat.")] = None,
    system_col: Annotated[str | None, typer.Option(help="Column with each row's system prompt.")] = None,
    label: Annotated[str | None, typer.Option(help="Column with the label(s).")] = None,
    label_sep: Annotated[str | None, typer.Option(help="Split label strings on this (multi-label).")] = None,
    id: Annotated[str | None, typer.Option(help="Column with a stable id [default: content hash].")] = None,
    group: Annotated[str | None, typer.Option(help="Column whose value keeps records in one split.")] = None,
    json_path: Annotated[str | None, typer.Option(help="JSON: dotted key path to the array of rows.")] = None,
    encoding: Annotated[str | None, typer.Option(help="Text encoding [default: detected].")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name in each record's source.")] = None,
    on_error: Annotated[str, typer.Option(help="raise: stop at the first bad row; skip: reject it.")] = "raise",
    read: ReadOption = None,
) -> None:
    """Import a dataset file into corpusmill records (JSONL), with FILE:LINE errors."""
    named = {"text": text, "messages": messages, "label": label, "label_sep": label_sep, "id": id, "group": group}
    named |= {"prompt": prompt, "response": response, "system": system, "system_col": system_col, "turns": turns}
    named |= {"role_key": role_key, "content_key": content_key, "roles": roles}
    named |= {"json_path": json_path, "encoding": encoding}
    options = {key: value for key, value in named.items() if value is not None}
    extra = {"dataset": dataset, "on_error": on_error, "uri": str(source)}
    reader, result = _partial(source, format, read, list, out, 1, named=options, **extra)
    stats = reader.stats
    say(f"{reader.format}: {stats.total} rows in, {stats.kept} records out, rejected: {reasons(stats)}")
    say(f"Records: {out}\nRejects: {result.rejects}")


@app.command()
def clean(
    source: Annotated[Path, typer.Argument(help="Records JSONL, or any file the importers read.")],
    out: Annotated[Path, typer.Option("--out", help="Cleaned records JSONL.")],
    config: Annotated[Path | None, typer.Option("--config", help="YAML with a 'clean:' list of steps.")] = None,
    workers: WorkersOption = None,
    format: InputFormatOption = "auto",
    read: ReadOption = None,
) -> None:
    """Clean records with the steps of a config's clean section (or a sensible default set)."""
    from corpusmill.partial import clean_steps

    _, result = _partial(source, format, read, lambda: clean_steps(config), out, workers)
    print_steps("Clean steps", result)
    say(f"Records: {out}\nRejects: {result.rejects}/")


@app.command()
def split(
    source: Annotated[Path, typer.Argument(help="Records JSONL, or any file the importers read.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for <split>.jsonl files and the report.")],
    ratios: Annotated[str, typer.Option(help="Comma-separated ratios, in --names order.")] = "0.8,0.1,0.1",
    names: Annotated[str, typer.Option(help="Comma-separated split names.")] = "train,validation,test",
    seed: Annotated[int, typer.Option(help="Seed of the hash order.")] = 0,
    stratify_by: Annotated[str, typer.Option(help="label or meta.<key>.")] = "label",
    group_by: Annotated[str, typer.Option(help="group, source.uri, parent_id or meta.<key>.")] = "group",
    previous: Annotated[
        Path | None, typer.Option(help="A previous release or split output: its records keep their split.")
    ] = None,
    rare_classes: Annotated[str, typer.Option(help="train, drop or error.")] = "train",
    fail_on_leakage: Annotated[bool, typer.Option("--fail-on-leakage", help="Exit 1 on cross-split leakage.")] = False,
    workers: WorkersOption = None,
    format: InputFormatOption = "auto",
    read: ReadOption = None,
) -> None:
    """Split records into stratified, group-aware splits with a leakage report."""
    from corpusmill.partial import ratios_by_name, splitter_step

    try:
        params: dict[str, Any] = {"ratios": ratios_by_name(ratios, names), "stratify_by": stratify_by}
    except ValueError as exc:
        raise usage_error(exc) from None
    params |= {"group_by": group_by, "previous": previous, "rare_classes": rare_classes}
    params["leakage"] = {"fail_on_leakage": fail_on_leakage}
    splits = list(params["ratios"])
    _, result = _partial(
        source, format, read, lambda: [splitter_step(params, seed)], out, workers, seed=seed, splits=splits
    )
    print_split(result.steps[-1].report)
    say(f"Splits: {out}/")


@app.command()
def augment(
    source: Annotated[Path, typer.Argument(help="Records JSONL (train records, or unsplit), or any importable file.")],
    out: Annotated[Path, typer.Option("--out", help="Records JSONL: the inputs plus their variants.")],
    step: Annotated[
        str, typer.Option("--step", help="An augment step's name, or a YAML file with a step or an 'augment:' list.")
    ] = "backtranslate",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A step parameter KEY=VALUE (YAML value, dotted keys nest), repeatable."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the step's sampling.")] = 0,
    workers: WorkersOption = 1,
    format: InputFormatOption = "auto",
    read: ReadOption = None,
) -> None:
    """Augment records with a registered augment step (`corpusmill steps backtranslate` lists its
    parameters), e.g. --set 'pivots=[{language: de}]' --set n=2."""
    from corpusmill.partial import assignments, step_specs

    def augment_steps() -> list[Any]:
        return step_specs(step, assignments(set_ or [], "--set"), "augment", seed)

    _, result = _partial(source, format, read, augment_steps, out, workers, seed=seed)
    print_steps("Augment steps", result)
    say(f"Records: {out}")


app.command("train")(train_command)
app.command()(chat)
app.command()(generate)
app.command()(ablate)


app.command()(serve)
app.command()(steps)
app.command()(schema)
app.command()(demo)
app.add_typer(release_app, name="release")
