"""The job queue, persisted in SQLite, and the worker processes that run jobs.

A job is ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``. Each runs in its
own process (a crawl needs a fresh Twisted reactor, a build its own worker pool, training its own
torch threads), writing its output to ``jobs/<id>/log.txt``. When the service starts, jobs that
were ``running`` when it died are marked ``interrupted`` and queued again: builds resume from
their stage checkpoints, crawls from their job directory, so nothing is lost.

A job runs in one place at a time: its worker leads a process group of its own (everything it
starts belongs to it, so cancelling kills the group), dies with the service (``PR_SET_PDEATHSIG``),
and holds ``jobs/<id>/lock`` while it runs. A restarted service first kills whatever is left of
an interrupted job's group (processes carrying that job's ``CORPUSMILL_JOB`` marker), and a worker
that still finds the lock held waits for it; builds also lock their work dir and release.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sqlite3
import sys
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corpusmill.processes import FileLock, die_with_parent, kill_group, start_time

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class JobStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kind TEXT, state TEXT, config TEXT, "
                "created_at TEXT, started_at TEXT, finished_at TEXT, result TEXT, error TEXT, attempts INTEGER)"
            )
            columns = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            if "pgid" not in columns:
                db.execute("ALTER TABLE jobs ADD COLUMN pgid INTEGER")
                db.execute("ALTER TABLE jobs ADD COLUMN started_ticks INTEGER")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def add(self, kind: str, config: dict[str, Any]) -> str:
        job_id = uuid.uuid4().hex[:12]
        with self._connect() as db:
            db.execute(
                "INSERT INTO jobs VALUES (?, ?, 'queued', ?, ?, NULL, NULL, NULL, NULL, 0, NULL, NULL)",
                (job_id, kind, json.dumps(config), now()),
            )
        return job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row(row) if row else None

    def all(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            return [_row(r) for r in db.execute("SELECT * FROM jobs ORDER BY created_at, id")]

    def set(self, job_id: str, **fields: Any) -> None:
        if "result" in fields:
            fields["result"] = json.dumps(fields["result"])
        names = ", ".join(f"{key} = ?" for key in fields)
        with self._connect() as db:
            db.execute(f"UPDATE jobs SET {names} WHERE id = ?", (*fields.values(), job_id))

    def claim(self) -> dict[str, Any] | None:
        """The oldest queued job, atomically marked running."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY created_at, id LIMIT 1").fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', started_at = ?, attempts = attempts + 1 WHERE id = ?",
                (now(), row["id"]),
            )
            db.execute("COMMIT")
        return _row(row)

    def recover(self) -> list[str]:
        """Jobs left ``running`` by a service that died: what is left of them is killed, then they
        are queued again."""
        with self._connect() as db:
            rows = db.execute("SELECT id, pgid, started_ticks FROM jobs WHERE state = 'running'").fetchall()
            for row in rows:
                if row["pgid"]:
                    reap_job(row["id"], row["pgid"], row["started_ticks"])
            ids = [row["id"] for row in rows]
            for job_id in ids:
                db.execute(
                    "UPDATE jobs SET state = 'queued', error = 'interrupted by a service restart; resumed' "
                    "WHERE id = ?",
                    (job_id,),
                )
        return ids


def _row(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["config"] = json.loads(data["config"])
    data["result"] = json.loads(data["result"]) if data["result"] else None
    return data


JOB_MARKER = "CORPUSMILL_JOB"
"""Environment variable every process a job worker starts inherits: how a restarted service
finds them even outside the worker's group."""


def reap_job(job_id: str, pgid: int, started_ticks: int | None) -> None:
    """SIGKILL what is left of job ``job_id``: its group when the group leader is still the
    worker that recorded it (same pid *and* start time: pids get reused), and any process that
    carries the job's marker in its environment."""
    if started_ticks is not None and start_time(pgid) == started_ticks:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    marker = f"{JOB_MARKER}={job_id}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid or marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def run_job(job_id: str, kind: str, config: dict[str, Any], workspace: str, store_path: str, service_pid: int) -> None:
    """Worker process entry: lead a process group, die with the service, run one job under its
    lock and record its outcome."""
    os.setsid()
    die_with_parent(service_pid)
    os.environ[JOB_MARKER] = job_id
    from corpusmill.service.runners import RUNNERS

    job_dir = Path(workspace) / "jobs" / job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    log = (job_dir / "log.txt").open("a", buffering=1, encoding="utf-8")
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    store = JobStore(Path(store_path))
    FileLock(job_dir / "lock").acquire(on_wait=lambda: print(f"waiting for an earlier run of job {job_id} to end"))
    store.set(job_id, pgid=os.getpid(), started_ticks=start_time(os.getpid()))
    try:
        result = RUNNERS[kind](config, Path(workspace), job_dir)
    except BaseException as exc:
        traceback.print_exc()
        store.set(job_id, state="failed", finished_at=now(), error=f"{type(exc).__name__}: {exc}")
        return
    store.set(job_id, state="succeeded", finished_at=now(), result=result, error=None)


class Supervisor:
    """Starts queued jobs in worker processes (``max_jobs`` at a time) and cancels on request."""

    def __init__(self, store: JobStore, workspace: Path, max_jobs: int = 1) -> None:
        self.store, self.workspace, self.max_jobs = store, workspace, max_jobs
        self.processes: dict[str, multiprocessing.process.BaseProcess] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="corpusmill-supervisor", daemon=True)
        self.context = multiprocessing.get_context("spawn")

    def start(self) -> None:
        self.store.recover()
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)

    def cancel(self, job_id: str) -> bool:
        process = self.processes.get(job_id)
        job = self.store.get(job_id)
        if job is None or job["state"] not in ("queued", "running"):
            return False
        self.store.set(job_id, state="cancelled", finished_at=now())
        if process is not None and process.is_alive():
            kill_group(process.pid)  # the worker leads its group: its pools and crawl children go too
            process.kill()
        return True

    def _loop(self) -> None:
        while not self.stopping.is_set():
            for job_id, process in list(self.processes.items()):
                if not process.is_alive():
                    process.join()
                    del self.processes[job_id]
                    job = self.store.get(job_id)
                    if job and job["state"] == "running":  # died without recording an outcome
                        self.store.set(
                            job_id,
                            state="failed",
                            finished_at=now(),
                            error=f"worker process exited with code {process.exitcode}",
                        )
            while len(self.processes) < self.max_jobs:
                job = self.store.claim()
                if job is None:
                    break
                process = self.context.Process(
                    target=run_job,
                    name=f"corpusmill-job-{job['id']}",
                    args=(
                        job["id"],
                        job["kind"],
                        job["config"],
                        str(self.workspace),
                        str(self.store.path),
                        os.getpid(),
                    ),
                )
                process.start()
                self.processes[job["id"]] = process
            time.sleep(0.2)
