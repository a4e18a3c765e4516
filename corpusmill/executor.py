"""The local executor: runs the stages in order, shards per-record steps over worker processes,
and checkpoints every stage so a killed build resumes where it stopped.

Stages and what they see::

    ingest   every source reader, in config order           (streams)
    clean    per-record steps sharded; dataset steps whole  (streams between dataset steps)
    split    the splitter, whole dataset
    augment  augmenters on the train split, sharded
    release  parquet + jsonl + card + manifest, written once

Each stage writes ``<work>/<stage>/records.jsonl`` and ``rejects/<step>.jsonl`` into a temp
directory that is renamed into place with a ``_DONE.json`` marker holding a key made from the
hash of its input and its config. A rerun skips every stage whose marker key still matches.
Shards are fixed-size chunks of the record stream processed in order, so the output bytes do not
depend on the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from corpusmill import __version__
from corpusmill.config import BuildConfig
from corpusmill.errors import InputError, ReleaseError
from corpusmill.io import atomic_directory, count_lines, read_records, sha256_file, sha256_json, write_json
from corpusmill.processes import FileLock, die_with
from corpusmill.schema import Record
from corpusmill.steps import PipelineStep, RecordStep, StepStats

CHUNK_SIZE = 256
"""Records per shard; fixed so that output order does not depend on the worker count."""

STAGES = ("ingest", "clean", "split", "augment")


@dataclass
class StepReport:
    stage: str
    label: str
    name: str
    stats: StepStats

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "label": self.label, "name": self.name, **self.stats.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepReport:
        return cls(data["stage"], data["label"], data["name"], StepStats.from_dict(data))

    @property
    def rejects_file(self) -> str:
        return f"{self.stage}.{self.label}.jsonl"


@dataclass
class StageResult:
    name: str
    key: str
    records_out: int
    output_sha256: str
    steps: list[StepReport]
    resumed: bool = False
    reports: dict[str, Any] = field(default_factory=dict)
    """Per step label, what a step reported (the split report), read from ``reports/``."""

    @property
    def directory_name(self) -> str:
        return self.name


@dataclass
class BuildResult:
    release_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    up_to_date: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)


# --- worker side -------------------------------------------------------------------------------

_WORKER_STEPS: list[RecordStep] = []


def _init_worker(steps: list[RecordStep], owner_pid: int) -> None:
    global _WORKER_STEPS
    die_with(owner_pid)
    _WORKER_STEPS = steps


ChunkResult = tuple[list[str], list[list[dict[str, Any]]], list[StepStats]]
"""A shard's output lines, each step's rejects, and each step's counters."""


def _run_chunk_in_worker(lines: list[str]) -> ChunkResult:
    return run_chunk(_WORKER_STEPS, lines)


def run_chunk(steps: Sequence[RecordStep], lines: list[str]) -> ChunkResult:
    """Run a chain of per-record steps over one shard (records as JSON lines, both ways)."""
    for step in steps:
        step.reset()
    stream: Iterable[Record] = (Record.from_json(line) for line in lines)
    for step in steps:
        stream = step.run(stream)
    out = [record.to_json() for record in stream]
    rejects = [[reject.to_dict() for reject in step.rejects] for step in steps]
    return out, rejects, [step.stats for step in steps]


# --- parent side -------------------------------------------------------------------------------


class RejectLog:
    """Appends rejected records to ``rejects/<stage>.<step>.jsonl`` inside a stage directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.handles: dict[str, IO[str]] = {}

    def write(self, filename: str, rejects: Iterable[dict[str, Any]]) -> None:
        for reject in rejects:
            if filename not in self.handles:
                self.directory.mkdir(parents=True, exist_ok=True)
                self.handles[filename] = (self.directory / filename).open("w", encoding="utf-8")
            self.handles[filename].write(json.dumps(reject, ensure_ascii=False, sort_keys=True) + "\n")

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def _read_reports(stage_dir: Path) -> dict[str, Any]:
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((stage_dir / "reports").glob("*.json"))
    }


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for record in records:
        chunk.append(record.to_json())
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class StepRunner:
    """Runs a chain of steps over a JSONL of records with ``workers`` processes."""

    def __init__(self, workers: int | None = None, console: Console | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("records"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            disable=not self.console.is_terminal,
        )

    def run_steps(self, stage: str, steps: list[PipelineStep], out: Path, input_path: Path | None) -> list[StepReport]:
        """Chain the steps over ``input_path`` into ``out/records.jsonl`` and ``out/rejects/``.

        Runs of per-record steps are sharded over the workers; dataset steps see everything.
        """
        assert input_path is not None
        rejects = RejectLog(out / "rejects")
        reports = [StepReport(stage, step.label, step.name, StepStats()) for step in steps]
        total = count_lines(input_path)
        task = self.progress.add_task(stage, total=total)
        self._task, self._started = task, time.perf_counter()
        stream: Iterable[Record] = self._count_into(read_records(input_path), task)
        index = 0
        try:
            while index < len(steps):
                if isinstance(steps[index], RecordStep):
                    end = index
                    while end < len(steps) and isinstance(steps[end], RecordStep):
                        end += 1
                    stream = self._sharded(steps[index:end], reports[index:end], stream, rejects)  # type: ignore[arg-type]
                    index = end
                else:
                    stream = self._whole(steps[index], reports[index], stream, rejects)
                    index += 1
            with (out / "records.jsonl").open("w", encoding="utf-8") as handle:
                for record in stream:
                    handle.write(record.to_json() + "\n")
        finally:
            rejects.close()
        return reports

    def _count_into(self, records: Iterator[Record], task: Any) -> Iterator[Record]:
        for record in records:
            self.progress.advance(task)
            yield record

    def _whole(
        self, step: PipelineStep, report: StepReport, records: Iterable[Record], rejects: RejectLog
    ) -> Iterator[Record]:
        yield from step.run(records)  # type: ignore[attr-defined]
        report.stats.merge(step.stats)
        rejects.write(report.rejects_file, (r.to_dict() for r in step.rejects))
        if step.report:
            write_json(rejects.directory.parent / "reports" / f"{step.label}.json", step.report)
        step.reset()

    def _sharded(
        self,
        steps: list[RecordStep],
        reports: list[StepReport],
        records: Iterable[Record],
        rejects: RejectLog,
    ) -> Iterator[Record]:
        for lines, step_rejects, stats in self.chunk_results(steps, _chunks(records, CHUNK_SIZE)):
            for report, step_stats, step_reject in zip(reports, stats, step_rejects, strict=True):
                report.stats.merge(step_stats)
                rejects.write(report.rejects_file, step_reject)
                translated = report.stats.counts.get("sentences_translated")
                if translated:  # back-translation shows its own rate
                    rate = translated / max(time.perf_counter() - self._started, 1e-6)
                    self.progress.update(self._task, description=f"{report.stage} {rate:,.0f} sentences/s")
            for line in lines:
                yield Record.from_json(line)

    def chunk_results(self, steps: list[RecordStep], chunks: Iterable[list[str]]) -> Iterator[ChunkResult]:
        """Each shard's result, in shard order; at most ``2 × workers`` shards in flight."""
        if self.workers == 1:
            for chunk in chunks:
                yield run_chunk(steps, chunk)
            return
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(steps, os.getpid())
        ) as pool:
            pending: list[Future[Any]] = []
            for chunk in chunks:
                pending.append(pool.submit(_run_chunk_in_worker, chunk))
                if len(pending) >= 2 * self.workers:
                    yield pending.pop(0).result()
            for future in pending:
                yield future.result()


class LocalExecutor(StepRunner):
    """Runs a build on this machine with ``workers`` processes for per-record steps."""

    def __init__(self, config: BuildConfig, workers: int | None = None, console: Console | None = None) -> None:
        super().__init__(workers, console)
        self.config = config
        self.work_dir = config.resolved_work_dir

    # -- public ------------------------------------------------------------------------------

    def build(self) -> BuildResult:
        """Build under two locks, the release's and the work dir's (in that order): builds of one
        release or one work dir never run side by side; a second one waits, then resumes or finds
        the release up to date."""
        release_dir = self.config.release_dir
        console = self.console
        with (
            FileLock(release_dir.parent / f".{release_dir.name}.lock").acquire(
                on_wait=lambda: console.print(f"waiting for another build of {release_dir}…")
            ),
            FileLock(self.work_dir / ".lock").acquire(
                on_wait=lambda: console.print(f"waiting for another build using {self.work_dir}…")
            ),
        ):
            return self._build_locked()

    def _build_locked(self) -> BuildResult:
        from corpusmill.release import existing_release_key, verify_release, write_release

        config = self.config
        release_dir = config.release_dir
        readers = config.make_readers()
        key = sha256_json(
            {
                "sources": [reader.fingerprint() for reader in readers],
                "config": config.as_dict(),
                "version": __version__,
            }
        )
        if release_dir.exists():
            if existing_release_key(release_dir) == key:
                try:
                    verify_release(release_dir)
                except ReleaseError as exc:
                    raise ReleaseError(f"{release_dir}: release exists but does not verify: {exc}") from None
                return BuildResult(release_dir=release_dir, up_to_date=True)
            raise ReleaseError(
                f"{release_dir}: release already exists and was built from other inputs or config; "
                "bump release.version (an existing version is never overwritten)"
            )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        result = BuildResult(release_dir=release_dir)
        stage_config: dict[str, Any] = {
            "ingest": key,
            "clean": [spec.model_dump(mode="json") for spec in config.clean],
            "split": {"split": config.split.model_dump(mode="json"), "seed": config.seed},
            "augment": {"augment": [s.model_dump(mode="json") for s in config.augment], "seed": config.seed},
        }
        runners: dict[str, Callable[[Path, Path | None], list[StepReport]]] = {
            "ingest": lambda out, _: self._ingest(readers, out),
            "clean": self._clean,
            "split": self._split,
            "augment": self._augment,
        }
        previous: StageResult | None = None
        with self.progress:
            for stage in STAGES:
                stage_key = sha256_json(
                    {"input": previous.output_sha256 if previous else None, "config": stage_config[stage]}
                )
                previous = self._run_stage(stage, stage_key, runners[stage], previous)
                result.stages.append(previous)
        final_records = self.work_dir / STAGES[-1] / "records.jsonl"
        result.manifest = write_release(
            config, key, final_records, result.stages, self.work_dir, release_dir, self.console
        )
        return result

    # -- stages ------------------------------------------------------------------------------

    def _run_stage(
        self,
        stage: str,
        key: str,
        runner: Callable[[Path, Path | None], list[StepReport]],
        previous: StageResult | None,
    ) -> StageResult:
        stage_dir = self.work_dir / stage
        marker = stage_dir / "_DONE.json"
        if marker.exists():
            done = json.loads(marker.read_text(encoding="utf-8"))
            if done["key"] == key:
                return StageResult(
                    stage,
                    key,
                    done["records_out"],
                    done["output_sha256"],
                    [StepReport.from_dict(step) for step in done["steps"]],
                    resumed=True,
                    reports=_read_reports(stage_dir),
                )
            shutil.rmtree(stage_dir)
        elif stage_dir.exists():
            shutil.rmtree(stage_dir)
        input_path = self.work_dir / previous.directory_name / "records.jsonl" if previous else None
        with atomic_directory(stage_dir) as tmp:
            steps = runner(tmp, input_path)
            output = tmp / "records.jsonl"
            records_out = count_lines(output)
            result = StageResult(stage, key, records_out, sha256_file(output), steps, reports=_read_reports(tmp))
            write_json(
                tmp / "_DONE.json",
                {
                    "key": key,
                    "records_out": records_out,
                    "output_sha256": result.output_sha256,
                    "steps": [step.to_dict() for step in steps],
                },
            )
        return result

    def _ingest(self, readers: Sequence[PipelineStep], out: Path) -> list[StepReport]:
        """Read every source; repeated content ids get a ``-2``, ``-3`` … suffix."""
        rejects = RejectLog(out / "rejects")
        reports = []
        seen: dict[str, int] = defaultdict(int)
        task = self.progress.add_task("ingest", total=None)
        try:
            with (out / "records.jsonl").open("w", encoding="utf-8") as handle:
                for reader in readers:
                    reader.label = reader.dataset  # type: ignore[attr-defined]
                    report = StepReport("ingest", reader.label, reader.name, reader.stats)
                    for record in reader.run():  # type: ignore[attr-defined]
                        seen[record.id] += 1
                        if seen[record.id] > 1:
                            record.id = f"{record.id}-{seen[record.id]}"
                        handle.write(record.to_json() + "\n")
                        self.progress.advance(task)
                        if reader.rejects:
                            rejects.write(report.rejects_file, (r.to_dict() for r in reader.rejects))
                            reader.rejects.clear()
                    rejects.write(report.rejects_file, (r.to_dict() for r in reader.rejects))
                    reader.rejects.clear()
                    reports.append(report)
        finally:
            rejects.close()
        if not seen:
            where = ", ".join(str(getattr(r.params, "path", r.name)) for r in readers)
            raise InputError(where, "empty input: the sources hold no records")
        return reports

    def _clean(self, out: Path, input_path: Path | None) -> list[StepReport]:
        return self.run_steps("clean", self.config.make_clean_steps(), out, input_path)

    def _augment(self, out: Path, input_path: Path | None) -> list[StepReport]:
        return self.run_steps("augment", list(self.config.make_augmenters()), out, input_path)

    def _split(self, out: Path, input_path: Path | None) -> list[StepReport]:
        return self.run_steps("split", [self.config.make_splitter()], out, input_path)
