"""The ``corpusmill`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from corpusmill import __version__
from corpusmill.config import load_config
from corpusmill.errors import CorpusmillError
from corpusmill.executor import BuildResult, LocalExecutor

app = typer.Typer(
    help="Crawl, import, clean, split and augment text into versioned training releases.",
    no_args_is_help=True,
    add_completion=False,
)
release_app = typer.Typer(help="Inspect and check releases.", no_args_is_help=True)
app.add_typer(release_app, name="release")

console = Console(stderr=True)
out_console = Console(soft_wrap=True)

WorkersOption = Annotated[
    int | None, typer.Option("--workers", "-w", min=1, help="Worker processes for per-record steps [default: cores].")
]


def _fail(exc: CorpusmillError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


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
) -> None:
    """Run every stage of a build config and write the release."""
    try:
        build_config = load_config(config)
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
) -> None:
    """Crawl a site politely into records (page text and FAQ question/answer pairs)."""
    from pydantic import ValidationError

    from corpusmill.schema import describe_validation_error
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
        )
    except ValidationError as exc:
        console.print(f"[red]error:[/red] {describe_validation_error(exc)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
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
    for reason, count in {**stats["rejected"], **stats["not_followed"]}.items():
        out_console.print(f"  {reason}: {count}", highlight=False)
    out_console.print(
        f"Records: {result.out}\nRejects: {result.rejects}\nStats:   {result.stats_path}", highlight=False
    )


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
) -> None:
    """Build a release from the help-centre corpus that ships inside corpusmill."""
    from corpusmill.demo import prepare_demo

    try:
        config_path = prepare_demo(out_dir, console)
        result = LocalExecutor(load_config(config_path), workers=workers, console=console).build()
    except CorpusmillError as exc:
        raise _fail(exc) from None
    print_summary(result)
    out_console.print(f"Config: {config_path}", highlight=False)
    out_console.print(f"Card:   {result.release_dir / 'README.md'}", highlight=False)


def print_summary(result: BuildResult) -> None:
    """Records per split, rejects by reason and where the release is."""
    import json

    from corpusmill.release import MANIFEST

    manifest = result.manifest or json.loads((result.release_dir / MANIFEST).read_text(encoding="utf-8"))
    if result.up_to_date:
        out_console.print(
            f"Release {result.release_dir} is up to date (same inputs and config); nothing to do.", highlight=False
        )
    resumed = [stage.name for stage in result.stages if stage.resumed]
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
