"""A throwaway ``redis-server`` on a free loopback port, with nothing saved to disk."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from served import free_port


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Start Debian's ``redis-server`` bound to 127.0.0.1; yield its URL; stop it after."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (make test installs Debian's redis-server)")
    port = free_port()
    no_persistence = ["--save", "", "--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), *no_persistence],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=20)
