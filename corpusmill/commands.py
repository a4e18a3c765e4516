"""The commands around a build: ``serve`` (the HTTP service), ``steps`` and ``schema`` (what a
config can say), ``release verify`` and ``demo``; registered by :mod:`corpusmill.cli`, which
keeps ``build`` and its partial pipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from corpusmill.config import load_config
from corpusmill.console import WorkersOption, console, fail, print_registered_steps, print_summary, say
from corpusmill.errors import CorpusmillError
from corpusmill.executor import LocalExecutor

release_app = typer.Typer(help="Inspect and check releases.", no_args_is_help=True, rich_markup_mode=None)


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
    max_upload_mb: Annotated[int, typer.Option(min=1, help="Largest input file a client may upload, in MiB.")] = 256,
) -> None:
    """Run the HTTP API and its web page (at /; OpenAPI docs at /docs); everything but /health
    and the sign-in page needs the token.

    Without a configured token one is generated and printed with a ready URL (as Jupyter does);
    on loopback, requests must name the bound address in ``Host`` (no DNS rebinding).
    """
    from corpusmill.service import serve as run_service

    try:
        run_service(
            host, port, workspace, token_file, allow_private_targets, max_jobs, public_docs, console, max_upload_mb
        )
    except CorpusmillError as exc:
        raise fail(exc) from None


def steps(
    name: Annotated[str | None, typer.Argument(help="A step's name: show its parameters.")] = None,
) -> None:
    """List every registered step with its kind, or show one step's parameters."""
    print_registered_steps(name)


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
    say(f"Schema: {out}")


@release_app.command("verify")
def release_verify(directory: Annotated[Path, typer.Argument(help="Release directory.")]) -> None:
    """Recompute every checksum and count of a release; exit 1 at the first mismatch."""
    from corpusmill.release import verify_release

    try:
        manifest = verify_release(directory)
    except CorpusmillError as exc:
        raise fail(exc) from None
    counts = ", ".join(f"{name} {info['records']}" for name, info in manifest["splits"].items())
    say(f"OK {directory}: {len(manifest['files'])} files, {counts}; accounting balances")


@release_app.command("push")
def release_push(
    directory: Annotated[Path, typer.Argument(help="Release directory.")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Dataset repository on the Hub: ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Make the repository private if it is new.")] = False,
    token: Annotated[str | None, typer.Option(help="Hub token [default: HF_TOKEN or the saved login].")] = None,
) -> None:
    """Verify a release, then upload exactly its files to a Hugging Face dataset repository."""
    from corpusmill.hub import push_release

    try:
        url = push_release(directory, repo_id, private, token)
    except CorpusmillError as exc:
        raise fail(exc) from None
    say(f"Pushed {directory} to {repo_id}: {url}")


def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo writes its inputs and release.")] = Path(
        "corpusmill-demo"
    ),
    workers: WorkersOption = None,
    train_model: Annotated[
        bool, typer.Option("--train/--no-train", help="End with short fine-tunes of MiniLM and SmolLM2.")
    ] = True,
    skip_classifier: Annotated[bool, typer.Option(help="Fine-tune only the chat model.")] = False,
    serve_after: Annotated[
        bool, typer.Option("--serve", help="Then serve the demo directory and print a link to its release's page.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port for --serve.")] = 8000,
) -> None:
    """Build a release from the help-centre corpus that ships inside corpusmill, then fine-tune on it:
    an intent classifier (MiniLM) and a chat model (SmolLM2-135M-Instruct with LoRA). With
    ``--serve``, open the result in the web page: the demo directory becomes the service's
    workspace (its inputs, release and training runs), on 127.0.0.1."""
    from corpusmill.demo import prepare_demo
    from corpusmill.demo.training import train_demo_models

    try:
        config_path = prepare_demo(out_dir, console)
        result = LocalExecutor(load_config(config_path), workers=workers, console=console).build()
        print_summary(result)
        say(f"Config: {config_path}\nCard:   {result.release_dir / 'README.md'}")
        for line in train_demo_models(result.release_dir, out_dir, skip_classifier, console) if train_model else []:
            say(line)
        if serve_after:
            from corpusmill.service import serve as run_service

            page = f"/ui/releases/{result.release_dir.parent.name}/{result.release_dir.name}"
            run_service("127.0.0.1", port, out_dir, None, False, 1, False, console, open_path=page)
    except CorpusmillError as exc:
        raise fail(exc) from None
