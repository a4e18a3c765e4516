"""Child processes that die with their parent, and locks that die with their holder.

Every process corpusmill starts dies with the process that owns it, so a ``kill -9`` of the owner
leaves nothing running. Direct children (crawl children, service job workers) call
:func:`die_with_parent`: Linux's ``PR_SET_PDEATHSIG`` delivers SIGKILL when the parent exits, and
the race where the parent is already gone is closed by checking the parent pid afterwards. Pool
workers started through a forkserver are children of the forkserver, which in turn lives as long
as any worker holds its "alive" pipe, so neither ever notices the owner's death; they call
:func:`die_with` on the owner's pid, which watches it through a pidfd. Written here because
neither ``multiprocessing`` nor ``concurrent.futures`` offers either.

:class:`FileLock` is ``flock`` on a lock file: the kernel drops it when the holder dies, however it
dies, so a lock never outlives a killed build, crawl or job worker and needs no stale-lock cleanup.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (Linux; a no-op elsewhere).

    ``parent_pid`` is the pid the caller expects as parent; without it, being re-parented to
    init (pid 1) already counts as an orphan. Exits at once if the parent is gone already.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = os.getppid()
    if parent == 1 or (parent_pid is not None and parent != parent_pid):
        os._exit(1)


def die_with(owner_pid: int) -> None:
    """Exit this process as soon as process ``owner_pid`` (not necessarily the parent) exits."""
    try:
        pidfd: int | None = os.pidfd_open(owner_pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        pidfd = None  # no pidfd on this kernel: poll instead

    def watch() -> None:
        if pidfd is not None:
            select.select([pidfd], [], [])
        else:
            while start_time(owner_pid) is not None:
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="corpusmill-die-with-owner", daemon=True).start()


def kill_group(pgid: int, grace: float = 3.0) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): with the pid, names one process for good."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` exists (zombies count as gone)."""
    for entry in Path("/proc").iterdir():
        fields = _stat(entry.name) if entry.name.isdigit() else None
        if fields and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class LockBusy(Exception):
    """The lock is held by another process and ``wait`` was false."""


class FileLock:
    """An exclusive ``flock`` on ``path`` (created if missing), held until :meth:`release`.

    ``on_wait`` is called once, before blocking, when another process holds the lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: bool = True, on_wait: Callable[[], None] | None = None) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                os.close(fd)
                raise LockBusy(str(self.path)) from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> FileLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
