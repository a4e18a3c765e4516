"""The local executor: runs a build's list of steps, shards per-record steps over worker
processes, and checkpoints so that a killed build resumes where it stopped.

A build is one list of steps (:meth:`BuildConfig.pipeline`): readers, then any mix of per-record
steps (sharded, streaming) and whole-dataset steps (dedup, splitting). The list is cut into
*segments* at the natural checkpoints — after the readers and after each whole-dataset step — and
each segment writes ``<work>/<NN>.<name>/records.jsonl`` and ``rejects/<step>.jsonl`` into a temp
directory renamed into place with a ``_DONE.json`` marker. The marker's key hashes the segment's
input and its steps' specs, so a rerun skips every segment whose key still matches. The release
writer is the last step: it turns the final records into the release. Shards are fixed-size
chunks of the record stream processed in order, so the output bytes do not depend on the number
of workers. The executor knows step kinds, never what a step is for.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from corpusmill import __version__
from corpusmill.config import BuildConfig
from corpusmill.digests import DigestCounts, digest
from corpusmill.errors import InputError, ReleaseError
from corpusmill.io import atomic_directory, count_lines, sha256_file, sha256_json, write_json
from corpusmill.processes import FileLock, die_with
from corpusmill.release import existing_release_key, verify_release, write_release
from corpusmill.reports import BuildResult, SegmentResult, StepReport, StepStats
from corpusmill.schema import Record
from corpusmill.steps import PipelineStep, Reader, RecordStep, Rejected

CHUNK_SIZE = 256
"""Records per shard; fixed so that output order does not depend on the worker count."""

DONE = "_DONE.json"


def plan_segments(steps: Sequence[PipelineStep]) -> list[tuple[str, list[PipelineStep]]]:
    """Cut the step list at its checkpoints: the readers form the first segment; a segment of
    other steps ends after each whole-dataset step, or at the end of the list. A segment is
    named by its position and its last step's label."""
    readers = [step for step in steps if isinstance(step, Reader)]
    if not readers or steps[: len(readers)] != readers:
        raise ValueError("a pipeline starts with its readers")
    segments = [readers]
    current: list[PipelineStep] = []
    for step in steps[len(readers) :]:
        current.append(step)
        if not isinstance(step, RecordStep):
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return [(f"{index:02d}.{segment[-1].label}", segment) for index, segment in enumerate(segments)]


def _report(step: PipelineStep, stats: StepStats | None = None) -> StepReport:
    return StepReport(step.label, step.name, step.kind, stats or StepStats())


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
    """Appends rejected records to ``rejects/<step>.jsonl`` as they come (the one serialiser)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.handles: dict[str, IO[str]] = {}

    def write(self, filename: str, rejects: Iterable[dict[str, Any]]) -> None:
        for reject in rejects:
            if filename not in self.handles:
                self.directory.mkdir(parents=True, exist_ok=True)
                self.handles[filename] = (self.directory / filename).open("w", encoding="utf-8")
            self.handles[filename].write(json.dumps(reject, ensure_ascii=False, sort_keys=True) + "\n")

    def sink(self, filename: str) -> Any:
        """A step's ``reject_sink``: each reject is written when the step makes it, never held."""

        def write(rejected: Rejected) -> None:
            self.write(filename, [rejected.to_dict()])

        return write

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _lines(path: Path, validate: bool) -> Iterator[str]:
    """The records of a JSONL file as JSON lines. A checkpoint this executor wrote is passed on
    unparsed (its records were validated when they were read in); a file from outside is
    validated here, once, so an error names ``FILE:LINE``."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if validate:
                Record.from_json(line, f"{path}:{number}")
            yield line.rstrip("\n")


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

    def run_steps(
        self, name: str, steps: list[PipelineStep], out: Path, input_path: Path, validate: bool = True
    ) -> list[StepReport]:
        """Chain the steps over ``input_path`` into ``out/records.jsonl`` and ``out/rejects/``.

        Records travel as JSON lines: per-record steps are sharded over the workers, which parse
        each record once and write it back once; whole-dataset steps see every record in this
        process and stream their rejects to disk as they make them. ``validate=False`` is for
        the executor's own checkpoints, whose records were validated when they were read in.
        """
        rejects = RejectLog(out / "rejects")
        reports = [_report(step) for step in steps]
        task = self.progress.add_task(name, total=count_lines(input_path))
        self._task, self._started = task, time.perf_counter()
        stream: Iterable[str] = self._count_into(_lines(input_path, validate), task)
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
                for line in stream:
                    handle.write(line + "\n")
        finally:
            rejects.close()
        for step, report in zip(steps, reports, strict=True):
            report.card_section = step.card_section(report)
        return reports

    def _count_into(self, lines: Iterator[str], task: Any) -> Iterator[str]:
        """Advance the progress bar as lines are consumed, a shard's worth at a time."""
        pending = 0
        for line in lines:
            pending += 1
            if pending == CHUNK_SIZE:
                self.progress.advance(task, pending)
                pending = 0
            yield line
        self.progress.advance(task, pending)

    def _whole(self, step: PipelineStep, report: StepReport, lines: Iterable[str], rejects: RejectLog) -> Iterator[str]:
        step.reset()
        step.reject_sink = rejects.sink(report.rejects_file)
        try:
            for record in step.run(Record.from_json(line) for line in lines):  # type: ignore[attr-defined]
                yield record.to_json()
        finally:
            step.reject_sink = None
        report.stats.merge(step.stats)
        report.report = step.report

    def _sharded(
        self,
        steps: list[RecordStep],
        reports: list[StepReport],
        lines: Iterable[str],
        rejects: RejectLog,
    ) -> Iterator[str]:
        for out, step_rejects, stats in self.chunk_results(steps, _chunks(lines, CHUNK_SIZE)):
            for report, step_stats, step_reject in zip(reports, stats, step_rejects, strict=True):
                report.stats.merge(step_stats)
                rejects.write(report.rejects_file, step_reject)
            elapsed = max(time.perf_counter() - self._started, 1e-6)
            rates = [
                f"{report.stats.metrics[step.progress_metric] / elapsed:,.0f} {step.progress_metric}/s"
                for step, report in zip(steps, reports, strict=True)
                if step.progress_metric and report.stats.metrics.get(step.progress_metric)
            ]
            if rates:  # a step that counts its own unit of work (sentences translated) shows its rate
                self.progress.update(self._task, description=" ".join(rates))
            yield from out

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


class PipelineRunner(StepRunner):
    """Runs any list of steps, readers first, as checkpointed segments under ``work_dir``: a
    rerun after a kill skips every segment whose key still matches. A build runs its whole list
    here and then writes the release; ``corpusmill import|clean|split|augment`` run a part of one
    (:mod:`corpusmill.partial`)."""

    def __init__(self, work_dir: Path, workers: int | None = None, console: Console | None = None) -> None:
        super().__init__(workers, console)
        self.work_dir = work_dir

    def run_pipeline(
        self, steps: Sequence[PipelineStep], seed: int = 0, specs: Sequence[dict[str, Any]] | None = None
    ) -> list[SegmentResult]:
        """Run every segment of ``steps`` in order (``specs``: the steps' specs, when the caller
        already has them: a reader's spec hashes its whole input)."""
        spec_of = {id(step): spec for step, spec in zip(steps, specs or [s.spec() for s in steps], strict=True)}
        self.work_dir.mkdir(parents=True, exist_ok=True)
        segments: list[SegmentResult] = []
        previous: SegmentResult | None = None
        with self.progress:
            for name, segment in plan_segments(steps):
                segment_key = sha256_json(
                    {
                        "input": previous.output_sha256 if previous else None,
                        "steps": [spec_of[id(step)] for step in segment],
                        "seed": seed,
                        "version": __version__,
                    }
                )
                previous = self._run_segment(name, segment, segment_key, previous)
                segments.append(previous)
        return segments

    def records_of(self, segment: SegmentResult) -> Path:
        """The records a finished segment wrote."""
        return self.work_dir / segment.name / "records.jsonl"

    @staticmethod
    def progress_of(work_dir: Path) -> dict[str, Any]:
        """The checkpoints a build in ``work_dir`` has finished, with each one's record count, and
        the one it is building (its directory still has its temp name): what the service shows
        for a running or restarted job."""
        done = {}
        for marker in sorted(work_dir.glob(f"*/{DONE}")):
            done[marker.parent.name] = json.loads(marker.read_text(encoding="utf-8"))["records_out"]
        running = sorted(path.name[1 : -len(".partial")] for path in work_dir.glob(".*.partial") if path.is_dir())
        return {"segments_done": list(done), "records_out": done, "running": running}

    def _run_segment(
        self, name: str, steps: list[PipelineStep], key: str, previous: SegmentResult | None
    ) -> SegmentResult:
        directory = self.work_dir / name
        marker = directory / DONE
        if marker.exists():
            done = json.loads(marker.read_text(encoding="utf-8"))
            if done["key"] == key:
                return SegmentResult.from_dict(done, resumed=True)
            shutil.rmtree(directory)
        elif directory.exists():
            shutil.rmtree(directory)
        with atomic_directory(directory) as tmp:
            if previous is None:
                reports = self._read(steps, tmp)  # type: ignore[arg-type]
            else:
                reports = self.run_steps(name, steps, tmp, self.records_of(previous), False)
            output = tmp / "records.jsonl"
            result = SegmentResult(name, key, count_lines(output), sha256_file(output), reports)
            write_json(tmp / DONE, result.to_dict())
        return result

    def _read(self, readers: Sequence[Reader], out: Path) -> list[StepReport]:
        """Read every source in order; repeated content ids get a ``-2``, ``-3`` … suffix."""
        rejects = RejectLog(out / "rejects")
        reports = []
        seen = DigestCounts()  # every id read so far: 24 bytes each, not a dict entry of ~150
        task = self.progress.add_task(readers[-1].label, total=None)
        try:
            with (out / "records.jsonl").open("w", encoding="utf-8") as handle:
                for reader in readers:
                    reader.reject_sink = rejects.sink(f"{reader.label}.jsonl")
                    for batch in reader.run_lines():
                        _, before = seen.add([digest(record_id) for record_id, _ in batch])
                        for (record_id, line), repeats in zip(batch, before.tolist(), strict=True):
                            if repeats:
                                record = Record.from_json(line)
                                record.id = f"{record_id}-{repeats + 1}"
                                line = record.to_json()
                            handle.write(line + "\n")
                        self.progress.advance(task, len(batch))  # a shard at a time, as elsewhere
                    reader.reject_sink = None
                    reports.append(_report(reader, reader.stats))
        finally:
            rejects.close()
        if not len(seen):
            where = ", ".join(str(getattr(r.params, "path", r.name)) for r in readers)
            dropped: Counter[str] = Counter()
            for reader in readers:
                dropped.update(reader.stats.dropped)
            if dropped:
                reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(dropped.items()))
                raise InputError(where, f"nothing imported: all {dropped.total()} rows were rejected ({reasons})")
            raise InputError(where, "empty input: the sources hold no records")
        return reports


class LocalExecutor(PipelineRunner):
    """Runs a build on this machine with ``workers`` processes for per-record steps."""

    def __init__(self, config: BuildConfig, workers: int | None = None, console: Console | None = None) -> None:
        super().__init__(config.resolved_work_dir, workers, console)
        self.config = config

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
        config = self.config
        release_dir = config.release_dir
        steps = config.pipeline()
        specs = [step.spec() for step in steps]  # a reader's spec hashes its input: once
        inputs = [
            {"dataset": step.dataset, "type": step.name, "uri": step.uri, "sha256": spec["input"]}
            for step, spec in zip(steps, specs, strict=True)
            if isinstance(step, Reader)
        ]
        key = sha256_json(
            {"sources": [entry["sha256"] for entry in inputs], "config": config.as_dict(), "version": __version__}
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
        result = BuildResult(release_dir=release_dir, segments=self.run_pipeline(steps, config.seed, specs))
        final_records = self.records_of(result.segments[-1])
        result.manifest = write_release(config, key, final_records, result.segments, self.work_dir, inputs)
        return result
