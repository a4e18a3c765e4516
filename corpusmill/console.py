"""What every command prints through: the two consoles, one-line errors, and the tables of a
finished build, partial pipeline or step listing. Stage packages' commands (``crawl``, ``train``…)
use it too, so every command fails and reports the same way."""

from __future__ import annotations

import json
from typing import Annotated, Any, get_origin

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from corpusmill.errors import CorpusmillError
from corpusmill.reports import BuildResult, StepStats

console = Console(stderr=True)
"""Progress, errors and warnings."""
out_console = Console(soft_wrap=True)
"""What a command produced."""

WorkersOption = Annotated[
    int | None, typer.Option("--workers", "-w", min=1, help="Worker processes for per-record steps [default: cores].")
]


def fail(exc: CorpusmillError) -> typer.Exit:
    """The error as one line, and the exit code its kind carries (raise what this returns)."""
    console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(exc.exit_code)


def usage_error(exc: Exception | str) -> typer.Exit:
    """A bad option value: one line (naming the field for validation errors), exit code 2."""
    from pydantic import ValidationError

    from corpusmill.schema import describe_validation_error

    message = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def say(text: str) -> None:
    """One line of a command's output, printed as it is (no markup, no highlighting)."""
    out_console.print(text, highlight=False)


def reasons(stats: StepStats) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(stats.dropped.items())) or "none"


def print_steps(title: str, result: Any) -> None:
    """One row per step of a partial pipeline (its reader left out): records in, kept,
    dropped, and why (with the step's metrics)."""
    table = Table(title=title)
    for column in ("step", "in", "kept", "dropped", "reasons"):
        table.add_column(column)
    for report in result.steps[1:]:
        stats = report.stats
        metrics = ", ".join(f"{k}: {v}" for k, v in sorted(stats.metrics.items()))
        added = f"added: {stats.added}" if stats.added else ""
        discarded = ", ".join(f"discarded {reason}: {n}" for reason, n in sorted(stats.discarded.items()))
        why = [x for x in (reasons(stats), added, discarded, metrics) if x]
        table.add_row(report.label, str(stats.total), str(stats.kept), str(stats.dropped_total), "; ".join(why))
    out_console.print(table)


def print_resumed(result: Any) -> None:
    resumed = [segment.name for segment in result.segments if segment.resumed]
    if resumed:
        say(f"Resumed from checkpoints: {', '.join(resumed)}")


def print_split(report: dict[str, Any]) -> None:
    """The ``split`` command's one line: records per split, rare classes, the largest class
    deviation and leaks."""
    leak = report["leakage"]
    say(
        f"{', '.join(f'{name} {n}' for name, n in report['splits'].items())}; rare classes: "
        f"{len(report['rare_classes'])}; largest class deviation {report['largest_deviation']['records']:+} "
        f"records; leakage: {leak['exact']} exact, {leak['near']} near"
    )


def print_summary(result: BuildResult) -> None:
    """Records per split, rejects by reason and where the release is."""
    from corpusmill.release import MANIFEST

    manifest = result.manifest or json.loads((result.release_dir / MANIFEST).read_text(encoding="utf-8"))
    if result.up_to_date:
        say(f"Release {result.release_dir} is up to date (same inputs and config); nothing to do.")
    print_resumed(result)
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
    for step, by_reason in accounting["rejected"].items():
        for reason, count in by_reason.items():
            rejects.add_row(step, reason, str(count))
    if accounting["rejected"]:
        out_console.print(rejects)
    say(
        f"{accounting['input_records']} in = {accounting['released_records'] - accounting['augmented_records']} "
        f"kept + {accounting['rejected_total']} rejected; {accounting['augmented_records']} augmented added."
    )
    say(f"Release: {result.release_dir}")


def print_registered_steps(name: str | None) -> None:
    """Every registered step with its kind and one-line doc, or one step's parameters (types,
    defaults and docs from its pydantic model); an unknown name is a usage error."""
    from pydantic_core import PydanticUndefined

    from corpusmill.registry import registered_steps

    known = registered_steps()
    if name is None:
        table = Table(title="Registered steps (config key: sources[].type, clean[].step, split.method, augment[].step)")
        for column in ("kind", "name", "what it does"):
            table.add_column(column)
        for cls in known:
            table.add_row(cls.kind, cls.name, escape(doc_line(cls.__doc__)))
        out_console.print(table)
        return
    matches = [cls for cls in known if cls.name == name]
    if not matches:
        raise usage_error(f"no step named {name!r} (known: {', '.join(sorted({c.name for c in known}))})")
    for cls in matches:
        say(f"{cls.kind} step {cls.name}: {doc_line(cls.__doc__)}")
        table = Table()
        for column in ("parameter", "type", "default", "description"):
            table.add_column(column)
        for field_name, field in cls.Params.model_fields.items():
            required = field.default is PydanticUndefined and field.default_factory is None
            default = "required" if required else repr(field.get_default(call_default_factory=True))
            annotation = field.annotation
            plain = isinstance(annotation, type) and get_origin(annotation) is None
            shown = annotation.__name__ if plain else str(annotation).replace("typing.", "")  # type: ignore[union-attr]
            cells = (field_name, shown, default, (field.description or "").replace("\n", " "))
            table.add_row(*map(escape, cells))
        out_console.print(table)


def doc_line(doc: str | None) -> str:
    """A docstring's first paragraph on one line."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())
