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
out = Console(soft_wrap=True)

WorkersOption = Annotated[
    int | None, typer.Option("--workers", "-w", min=1, help="Worker processes for per-record steps [default: cores].")
]


def _fail(exc: CorpusmillError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def _version(value: bool) -> None:
    if value:
        out.print(f"corpusmill {__version__}")
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


@release_app.command("verify")
def release_verify(directory: Annotated[Path, typer.Argument(help="Release directory.")]) -> None:
    """Recompute every checksum and count of a release; exit 1 at the first mismatch."""
    from corpusmill.release import verify_release

    try:
        manifest = verify_release(directory)
    except CorpusmillError as exc:
        raise _fail(exc) from None
    counts = ", ".join(f"{name} {info['records']}" for name, info in manifest["splits"].items())
    out.print(f"OK {directory}: {len(manifest['files'])} files, {counts}; accounting balances", highlight=False)


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
        config_path = prepare_demo(out_dir)
        result = LocalExecutor(load_config(config_path), workers=workers, console=console).build()
    except CorpusmillError as exc:
        raise _fail(exc) from None
    print_summary(result)
    out.print(f"Config: {config_path}", highlight=False)
    out.print(f"Card:   {result.release_dir / 'README.md'}", highlight=False)


def print_summary(result: BuildResult) -> None:
    """Records per split, rejects by reason and where the release is."""
    import json

    from corpusmill.release import MANIFEST

    manifest = result.manifest or json.loads((result.release_dir / MANIFEST).read_text(encoding="utf-8"))
    if result.up_to_date:
        out.print(
            f"Release {result.release_dir} is up to date (same inputs and config); nothing to do.", highlight=False
        )
    resumed = [stage.name for stage in result.stages if stage.resumed]
    if resumed:
        out.print(f"Resumed from checkpoints: {', '.join(resumed)}", highlight=False)
    splits = Table(title="Records per split")
    splits.add_column("split")
    splits.add_column("records", justify="right")
    splits.add_column("augmented", justify="right")
    for name, info in manifest["splits"].items():
        splits.add_row(name, str(info["records"]), str(info["augmented"]))
    out.print(splits)
    accounting = manifest["accounting"]
    rejects = Table(title="Rejected records by reason")
    rejects.add_column("step")
    rejects.add_column("reason")
    rejects.add_column("records", justify="right")
    for step, reasons in accounting["rejected"].items():
        for reason, count in reasons.items():
            rejects.add_row(step, reason, str(count))
    if accounting["rejected"]:
        out.print(rejects)
    out.print(
        f"{accounting['input_records']} in = {accounting['released_records'] - accounting['augmented_records']} "
        f"kept + {accounting['rejected_total']} rejected; {accounting['augmented_records']} augmented added.",
        highlight=False,
    )
    out.print(f"Release: {result.release_dir}", highlight=False)
