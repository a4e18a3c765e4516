"""The ``corpusmill`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from corpusmill import __version__
from corpusmill.config import load_config
from corpusmill.errors import CorpusmillError
from corpusmill.executor import LocalExecutor
from corpusmill.reports import BuildResult, StepStats

# rich_markup_mode=None: help texts are plain text, so "[default: cores]" is shown, not eaten as markup.
app = typer.Typer(
    help="Crawl, import, clean, split and augment text into versioned training releases.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
release_app = typer.Typer(help="Inspect and check releases.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(release_app, name="release")

console = Console(stderr=True)
out_console = Console(soft_wrap=True)

WorkersOption = Annotated[
    int | None, typer.Option("--workers", "-w", min=1, help="Worker processes for per-record steps [default: cores].")
]


def _fail(exc: CorpusmillError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def _usage_error(exc: Exception) -> typer.Exit:
    """A bad option value: one line (naming the field for validation errors), exit code 2."""
    from pydantic import ValidationError

    from corpusmill.schema import describe_validation_error

    message = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        out_console.print(f"corpusmill {__version__}")
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
        console.print("[red]error:[/red] --executor must be local or ray", highlight=False)
        raise typer.Exit(2)
    try:
        build_config = load_config(config)
        if executor == "ray":
            from corpusmill.ray_executor import RayExecutor

            result = RayExecutor(build_config, workers, address, num_gpus, console).build()
        else:
            result = LocalExecutor(build_config, workers=workers, console=console).build()
    except CorpusmillError as exc:
        raise _fail(exc) from None
    print_summary(result)


@app.command()
def crawl(
    urls: Annotated[list[str], typer.Argument(help="Start URLs; links are followed on their hosts only.")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL of records.")],
    max_pages: Annotated[int | None, typer.Option(min=1, help="Stop scheduling after this many pages.")] = None,
    max_depth: Annotated[int, typer.Option(min=0, help="Links followed from a start URL, at most.")] = 10,
    job_dir: Annotated[Path | None, typer.Option(help="Keep crawl state here; rerun to resume.")] = None,
    allow: Annotated[list[str] | None, typer.Option(help="Only follow URLs matching this regex (repeatable).")] = None,
    deny: Annotated[list[str] | None, typer.Option(help="Never follow URLs matching this regex (repeatable).")] = None,
    sitemap: Annotated[list[str] | None, typer.Option(help="Sitemap URL to read (repeatable).")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Politeness off: for sites you own.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 30.0,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Requests in flight at once (default 16, 64 with --fast).")
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(help="redis://HOST:PORT/DB: join the crawl shared by every worker started with these options."),
    ] = None,
    worker_timeout: Annotated[
        float, typer.Option(min=1, help="With --redis: seconds of silence before a worker's pages are requeued.")
    ] = 30.0,
) -> None:
    """Crawl a site politely into records (page text and FAQ question/answer pairs).

    With --redis, start the same command on as many processes or machines as you like: they split
    the site (no page fetched twice), take over the pages of a worker that dies, and each writes
    the whole crawl's records to its --out when the site is done.
    """
    from pydantic import ValidationError

    from crawlers.options import CrawlOptions
    from crawlers.run import crawl as run_crawl

    try:
        options = CrawlOptions(
            start_urls=urls,
            max_pages=max_pages,
            max_depth=max_depth,
            allow=allow or [],
            deny=deny or [],
            sitemaps=sitemap or [],
            fast=fast,
            timeout=timeout,
            concurrency=concurrency,
            redis=redis,
            worker_timeout=worker_timeout,
        )
    except ValidationError as exc:
        raise _usage_error(exc) from None
    try:
        result = run_crawl(options, out, job_dir, console)
    except CorpusmillError as exc:
        raise _fail(exc) from None
    stats = result.stats
    out_console.print(
        f"{stats['pages']} pages: {stats['pages_written']} written as {stats['records']} records "
        f"({stats['faq_pairs']} FAQ pairs) in {stats['seconds']}s",
        highlight=False,
    )
    # Two lists, as in stats.json: a reason such as "offsite" can name a rejected page (a redirect
    # away) and a link not followed, and the two must not be summed into one number.
    for title, counts in (("Rejected pages", stats["rejected"]), ("Links not followed", stats["not_followed"])):
        if counts:
            out_console.print(f"{title} ({sum(counts.values())}):", highlight=False)
            for reason, count in counts.items():
                hint = (
                    f" (deeper than --max-depth {max_depth}: raise it to follow them)" if reason == "max_depth" else ""
                )
                out_console.print(f"  {reason}: {count}{hint}", highlight=False)
    if "shared" in stats:
        split = ", ".join(f"{worker}: {n}" for worker, n in stats["shared"]["pages_by_worker"].items())
        out_console.print(f"Pages by worker: {split}", highlight=False)
    out_console.print(
        f"Records: {result.out}\nRejects: {result.rejects}\nStats:   {result.stats_path}", highlight=False
    )


InputFormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        help="Input format: csv, tsv, jsonl, json, parquet, hf, openai, sharegpt, alpaca, warc, dir, records "
        "[default: detected].",
    ),
]
ReadOption = Annotated[
    list[str] | None,
    typer.Option(
        "--read",
        help="An importer option KEY=VALUE, as in a build config's source: text=body, label=category… (repeatable).",
    ),
]


def _run_partial(steps: list[Any], out: Path, workers: int | None, seed: int = 0, **publish: Any) -> Any:
    """Run a partial pipeline; a bad option or input is one line and its exit code."""
    from corpusmill.partial import run_partial

    try:
        result = run_partial(steps, out, workers, console, seed, **publish)
    except CorpusmillError as exc:
        raise _fail(exc) from None
    resumed = [segment.name for segment in result.segments if segment.resumed]
    if resumed:
        out_console.print(f"Resumed from checkpoints: {', '.join(resumed)}", highlight=False)
    return result


def _input(source: Path, format: str, read: list[str] | None, named: dict[str, Any] | None = None, **fixed: Any) -> Any:
    """The input's reader: ``named`` options (import's own) first, then ``--read`` ones."""
    from corpusmill.partial import assignments, input_reader

    try:
        return input_reader(source, format, {**(named or {}), **assignments(read or [], "--read")}, **fixed)
    except CorpusmillError as exc:
        raise _fail(exc) from None


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="File, directory, or a Hugging Face hub id.")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL of records.")],
    format: InputFormatOption = "auto",
    text: Annotated[str | None, typer.Option(help="Column with the text [default: text].")] = None,
    messages: Annotated[str | None, typer.Option(help="Column with chat messages.")] = None,
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
    named |= {"json_path": json_path, "encoding": encoding}
    options = {key: value for key, value in named.items() if value is not None}
    reader = _input(source, format, read, options, dataset=dataset, on_error=on_error, uri=str(source))
    result = _run_partial([reader], out, 1)
    stats = result.steps[0].stats
    out_console.print(
        f"{reader.format}: {stats.total} rows in, {stats.kept} records out, rejected: {_reasons(stats)}",
        highlight=False,
    )
    out_console.print(f"Records: {out}\nRejects: {result.rejects}", highlight=False)


def _reasons(stats: StepStats) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(stats.dropped.items())) or "none"


DEFAULT_CLEAN = [
    {"step": "html_to_text"},
    {"step": "fix_unicode"},
    {"step": "normalize"},
    {"step": "length", "min_words": 1},
    {"step": "pii"},
    {"step": "exact_dedup"},
    {"step": "near_dedup"},
]


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
    from corpusmill.config import load_step_file, make_steps

    try:
        if config is not None:
            steps = load_step_file(config, "clean")
        else:
            steps = make_steps(DEFAULT_CLEAN, "clean", "clean", {})
    except CorpusmillError as exc:
        raise _fail(exc) from None
    result = _run_partial([_input(source, format, read), *steps], out, workers)
    _print_steps("Clean steps", result)
    out_console.print(f"Records: {out}\nRejects: {result.rejects}/", highlight=False)


def _print_steps(title: str, result: Any) -> None:
    """One row per step: records in, kept, dropped, and why (with the step's metrics)."""
    table = Table(title=title)
    for column in ("step", "in", "kept", "dropped", "reasons"):
        table.add_column(column)
    for report in result.steps[1:]:
        stats = report.stats
        metrics = ", ".join(f"{k}: {v}" for k, v in sorted(stats.metrics.items()))
        added = f"added: {stats.added}" if stats.added else ""
        discarded = ", ".join(f"discarded {reason}: {n}" for reason, n in sorted(stats.discarded.items()))
        reasons = [x for x in (_reasons(stats), added, discarded, metrics) if x]
        table.add_row(report.label, str(stats.total), str(stats.kept), str(stats.dropped_total), "; ".join(reasons))
    out_console.print(table)


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
    from corpusmill.config import make_step

    split_names = [n.strip() for n in names.split(",")]
    try:
        values = [float(v) for v in ratios.split(",")]
        if len(values) != len(split_names):
            raise ValueError(f"{len(values)} ratios for {len(split_names)} split names")
    except ValueError as exc:
        raise _usage_error(exc) from None
    params = {"ratios": dict(zip(split_names, values, strict=True)), "stratify_by": stratify_by}
    params |= {"group_by": group_by, "previous": previous, "rare_classes": rare_classes}
    try:
        splitter = make_step("split", "stratified", "split", params | {"leakage": {"fail_on_leakage": fail_on_leakage}})
    except CorpusmillError as exc:
        raise _fail(exc) from None
    splitter.seed, splitter.label = seed, "split.stratified"
    result = _run_partial([_input(source, format, read), splitter], out, workers, seed, splits=split_names)
    report = result.steps[-1].report
    counts = ", ".join(f"{name} {n}" for name, n in report["splits"].items())
    leak = report["leakage"]
    out_console.print(
        f"{counts}; rare classes: {len(report['rare_classes'])}; largest class deviation "
        f"{report['largest_deviation']['records']:+} records; leakage: {leak['exact']} exact, "
        f"{leak['near']} near",
        highlight=False,
    )
    out_console.print(f"Splits: {out}/", highlight=False)


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

    try:
        steps = step_specs(step, assignments(set_ or [], "--set"), "augment")
        for augmenter in steps:
            augmenter.seed = seed
    except CorpusmillError as exc:
        raise _fail(exc) from None
    result = _run_partial([_input(source, format, read), *steps], out, workers, seed)
    _print_steps("Augment steps", result)
    out_console.print(f"Records: {out}", highlight=False)


TaskOption = Annotated[str, typer.Option("--task", help="classification or causal-lm.")]
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        help="'minilm' (bundled encoder), 'smollm2' (bundled chat LLM), a local dir, a .gguf file or a cached hub id.",
    ),
]


def _task(task: str) -> str:
    if task not in ("classification", "causal-lm"):
        console.print("[red]error:[/red] --task must be classification or causal-lm", highlight=False)
        raise typer.Exit(2)
    return task


@app.command("train")
def train_command(
    release: Annotated[Path, typer.Argument(help="Release directory.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the model and the report.")],
    task: TaskOption = "classification",
    model: ModelOption = "minilm",
    config: Annotated[Path | None, typer.Option("--config", help="YAML: hyperparameters, objective.")] = None,
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
        raise _fail(exc) from None
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in report["test"]["metrics"].items())
    out_console.print(f"{len(report['search']['trials'])} trial(s) on validation; test: {metrics}", highlight=False)
    if report.get("base"):
        base = report["base"]["metrics"]
        tuned = report["test"]["metrics"]
        changes = ", ".join(f"{k} {base[k]:.4f} → {tuned[k]:.4f}" for k in tuned if k in base and k != "loss")
        out_console.print(f"base → tuned on test: {changes}", highlight=False)
    out_console.print(f"Report: {out / 'report.md'}\nModel:  {out / 'model'}", highlight=False)
    if report.get("merged"):
        out_console.print(f"Merged: {out / 'merged'}", highlight=False)


ChatModelOption = Annotated[
    str | None, typer.Option("--model", help="Without RUN_DIR: the base model ('smollm2', a dir or a .gguf file).")
]
RunDirArgument = Annotated[Path | None, typer.Argument(help="A training run (corpusmill train --out DIR).")]
MaxNewTokensOption = Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")]


def _chat_model(run_dir: Path | None, model: str | None) -> tuple[Any, Any]:
    """The model and tokenizer of a run, or of a base model: exactly one of the two is given."""
    from training.chat import load_chat_model

    if (run_dir is None) == (model is None):
        console.print("[red]error:[/red] give a RUN_DIR or --model, not both", highlight=False)
        raise typer.Exit(2)
    try:
        return load_chat_model(run_dir, model)
    except CorpusmillError as exc:
        raise _fail(exc) from None


@app.command()
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


@app.command()
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
        raise _fail(exc) from None
    out_console.print(f"{written} answers: {out}", highlight=False)


@app.command()
def ablate(
    release: Annotated[Path, typer.Argument(help="Release directory with augmented training records.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the ablation report.")],
    task: TaskOption = "classification",
    model: ModelOption = "minilm",
    config: Annotated[Path | None, typer.Option("--config", help="YAML: hyperparameters, objective.")] = None,
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
        raise _fail(exc) from None
    for metric, summary in report["summary"].items():
        out_console.print(
            f"{metric}: with {summary['with_mean']:.4f}, without {summary['without_mean']:.4f}, "
            f"difference {summary['mean_difference']:+.4f} ± {summary['stdev']:.4f}",
            highlight=False,
        )
    out_console.print(f"Report: {out / 'ablation.md'}", highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workspace: Annotated[Path, typer.Option(help="Where jobs, inputs, crawls and releases live.")] = Path(
        "corpusmill-service"
    ),
    token_file: Annotated[
        Path | None, typer.Option(help="File holding the bearer token [default: $CORPUSMILL_TOKEN].")
    ] = None,
    allow_private_targets: Annotated[
        bool, typer.Option(help="Let crawl jobs reach loopback and private addresses.")
    ] = False,
    max_jobs: Annotated[int, typer.Option(min=1, help="Jobs running at once.")] = 1,
    public_docs: Annotated[bool, typer.Option(help="Serve /docs and /openapi.json without the token.")] = False,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs); every endpoint but /health needs the token.

    Without a configured token one is generated and printed with a ready URL (as Jupyter does);
    on loopback, requests must name the bound address in ``Host`` (no DNS rebinding).
    """
    from corpusmill.service import serve as run_service

    try:
        run_service(host, port, workspace, token_file, allow_private_targets, max_jobs, public_docs, console)
    except CorpusmillError as exc:
        raise _fail(exc) from None


@app.command()
def steps(
    name: Annotated[str | None, typer.Argument(help="A step's name: show its parameters.")] = None,
) -> None:
    """List every registered step with its kind, or show one step's parameters."""
    from typing import get_origin

    from pydantic_core import PydanticUndefined
    from rich.markup import escape

    from corpusmill.registry import registered_steps

    known = registered_steps()
    if name is None:
        table = Table(title="Registered steps (config key: sources[].type, clean[].step, split.method, augment[].step)")
        for column in ("kind", "name", "what it does"):
            table.add_column(column)
        for cls in known:
            table.add_row(cls.kind, cls.name, escape(_doc_line(cls.__doc__)))
        out_console.print(table)
        return
    matches = [cls for cls in known if cls.name == name]
    if not matches:
        console.print(
            f"[red]error:[/red] no step named {name!r} (known: {', '.join(sorted({c.name for c in known}))})",
            highlight=False,
        )
        raise typer.Exit(2)
    for cls in matches:
        out_console.print(f"{cls.kind} step {cls.name}: {_doc_line(cls.__doc__)}", highlight=False)
        table = Table()
        for column in ("parameter", "type", "default", "description"):
            table.add_column(column)
        for field_name, field in cls.Params.model_fields.items():
            default = (
                "required"
                if field.default is PydanticUndefined and field.default_factory is None
                else (repr(field.get_default(call_default_factory=True)))
            )
            annotation = field.annotation
            plain = isinstance(annotation, type) and get_origin(annotation) is None
            shown = annotation.__name__ if plain else str(annotation).replace("typing.", "")  # type: ignore[union-attr]
            cells = (field_name, shown, default, (field.description or "").replace("\n", " "))
            table.add_row(*map(escape, cells))
        out_console.print(table)


def _doc_line(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of standard output.")] = None,
) -> None:
    """Write a JSON Schema of the build config (every registered step's parameters), for editors."""
    from corpusmill.config import build_config_schema
    from corpusmill.io import atomic_write

    text = json.dumps(build_config_schema(), indent=2, sort_keys=True) + "\n"
    if out is None:
        print(text, end="")
        return
    with atomic_write(out) as handle:
        handle.write(text)
    out_console.print(f"Schema: {out}", highlight=False)


@release_app.command("verify")
def release_verify(directory: Annotated[Path, typer.Argument(help="Release directory.")]) -> None:
    """Recompute every checksum and count of a release; exit 1 at the first mismatch."""
    from corpusmill.release import verify_release

    try:
        manifest = verify_release(directory)
    except CorpusmillError as exc:
        raise _fail(exc) from None
    counts = ", ".join(f"{name} {info['records']}" for name, info in manifest["splits"].items())
    out_console.print(f"OK {directory}: {len(manifest['files'])} files, {counts}; accounting balances", highlight=False)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo writes its inputs and release.")] = Path(
        "corpusmill-demo"
    ),
    workers: WorkersOption = None,
    train_model: Annotated[
        bool, typer.Option("--train/--no-train", help="End with short fine-tunes of MiniLM and SmolLM2.")
    ] = True,
    skip_classifier: Annotated[bool, typer.Option(help="Fine-tune only the chat model.")] = False,
) -> None:
    """Build a release from the help-centre corpus that ships inside corpusmill, then fine-tune on it:
    an intent classifier (MiniLM) and a chat model (SmolLM2-135M-Instruct with LoRA)."""
    from corpusmill.demo import prepare_demo

    try:
        config_path = prepare_demo(out_dir, console)
        result = LocalExecutor(load_config(config_path), workers=workers, console=console).build()
    except CorpusmillError as exc:
        raise _fail(exc) from None
    print_summary(result)
    out_console.print(f"Config: {config_path}", highlight=False)
    out_console.print(f"Card:   {result.release_dir / 'README.md'}", highlight=False)
    if not train_model:
        return
    from corpusmill.demo.training import train_demo_models

    try:
        for line in train_demo_models(result.release_dir, out_dir, skip_classifier, console):
            out_console.print(line, highlight=False)
    except CorpusmillError as exc:
        raise _fail(exc) from None


def print_summary(result: BuildResult) -> None:
    """Records per split, rejects by reason and where the release is."""
    import json

    from corpusmill.release import MANIFEST

    manifest = result.manifest or json.loads((result.release_dir / MANIFEST).read_text(encoding="utf-8"))
    if result.up_to_date:
        out_console.print(
            f"Release {result.release_dir} is up to date (same inputs and config); nothing to do.", highlight=False
        )
    resumed = [segment.name for segment in result.segments if segment.resumed]
    if resumed:
        out_console.print(f"Resumed from checkpoints: {', '.join(resumed)}", highlight=False)
    splits = Table(title="Records per split")
    splits.add_column("split")
    splits.add_column("records", justify="right")
    splits.add_column("augmented", justify="right")
    for name, info in manifest["splits"].items():
        splits.add_row(name, str(info["records"]), str(info["augmented"]))
    out_console.print(splits)
    accounting = manifest["accounting"]
    rejects = Table(title="Rejected records by reason")
    rejects.add_column("step")
    rejects.add_column("reason")
    rejects.add_column("records", justify="right")
    for step, reasons in accounting["rejected"].items():
        for reason, count in reasons.items():
            rejects.add_row(step, reason, str(count))
    if accounting["rejected"]:
        out_console.print(rejects)
    out_console.print(
        f"{accounting['input_records']} in = {accounting['released_records'] - accounting['augmented_records']} "
        f"kept + {accounting['rejected_total']} rejected; {accounting['augmented_records']} augmented added.",
        highlight=False,
    )
    out_console.print(f"Release: {result.release_dir}", highlight=False)
