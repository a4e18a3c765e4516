"""The command line as a user runs it: ``python -m corpusmill …`` in a child process."""

from __future__ import annotations

import subprocess
import sys


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "corpusmill", *args]


def run_cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``corpusmill ARGS`` to completion, its output captured as text (the caller checks the exit)."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout, env=env)
