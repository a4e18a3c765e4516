"""corpusmill as a service: an HTTP API over a SQLite job queue and worker processes."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

from rich.console import Console

from corpusmill.errors import ConfigError
from corpusmill.service.app import create_app

__all__ = ["create_app", "serve"]


def serve(
    host: str,
    port: int,
    workspace: Path,
    token_file: Path | None,
    allow_private_targets: bool,
    max_jobs: int,
    public_docs: bool,
    console: Console,
    max_upload_mb: int = 256,
    open_path: str = "/",
) -> None:
    """Serve the API and the web page until stopped. Without a configured token, one is generated
    and printed with a ready URL to ``open_path`` (as Jupyter does) — on loopback only; on
    loopback, requests must name the bound address in ``Host`` (no DNS rebinding)."""
    import uvicorn

    token = token_file.read_text(encoding="utf-8").strip() if token_file else os.environ.get("CORPUSMILL_TOKEN")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not token and not loopback:
        raise ConfigError(
            "serve",
            "",
            f"no bearer token configured: refusing to listen on {host} "
            "(set CORPUSMILL_TOKEN or --token-file, or listen on 127.0.0.1)",
        )
    if not token:
        token = secrets.token_urlsafe(24)
        shown = f"[{host}]" if ":" in host else host
        console.print(f"corpusmill service token: {token}", highlight=False, soft_wrap=True)
        console.print(f"open http://{shown}:{port}{open_path}?token={token}", highlight=False, soft_wrap=True)
    allowed_hosts = {host.strip("[]"), "localhost", "127.0.0.1", "::1"} if loopback else None
    workspace.mkdir(parents=True, exist_ok=True)
    app = create_app(
        workspace,
        token,
        allow_private_targets,
        max_jobs,
        allowed_hosts=allowed_hosts,
        public_docs=public_docs,
        max_upload=max_upload_mb * 1024 * 1024,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
