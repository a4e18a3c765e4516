"""``corpusmill import | clean | split | augment``: a part of a build, run by the build's executor.

Each command is a short list of steps — a reader for its input (any format the importers read,
detected or named), then the command's own steps — run by
:class:`~corpusmill.executor.PipelineRunner` in a work directory beside the output
(``.<out>.work/``). So every command gets worker processes, progress, rejects streamed to disk as
they are made, and resume after a kill (a rerun skips the segments already done), with no file
handling of its own. The output is published when every segment is done; then the work
directory goes. Bad input removes it too: nothing half-made is left behind.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from corpusmill.config import load_step_file, make_step, make_steps
from corpusmill.errors import ConfigError, CorpusmillError, InputError
from corpusmill.executor import PipelineRunner
from corpusmill.io import atomic_directory, atomic_write, write_json
from corpusmill.processes import FileLock
from corpusmill.release import account_for
from corpusmill.reports import SegmentResult, StepReport
from corpusmill.steps import PipelineStep, Reader

SPLIT_OUTPUT_FORMAT = "corpusmill-split/1"


@dataclass
class PartialResult:
    """What a partial pipeline published, and each step's report."""

    out: Path
    rejects: Path
    segments: list[SegmentResult]

    @property
    def steps(self) -> list[StepReport]:
        return [step for segment in self.segments for step in segment.steps]

    @property
    def records_out(self) -> int:
        return self.segments[-1].records_out

    @property
    def accounting(self) -> dict[str, Any]:
        return account_for(self.steps, self.records_out)


def assignments(items: Sequence[str], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` options as step parameters: the value is read as YAML (``n=2`` is a number,
    ``pivots=[{language: de}]`` a list), and a dotted key nests (``quality.similarity=none``)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(option, item, "expected KEY=VALUE")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(option, key, f"invalid value: {getattr(exc, 'problem', exc)}") from None
        *parents, last = key.strip().split(".")
        place = params
        for part in parents:
            place = place.setdefault(part, {})
            if not isinstance(place, dict):
                raise ConfigError(option, key, f"{part} is set to a value and given keys")
        place[last] = value
    return params


def input_reader(source: Path, format: str = "auto", options: dict[str, Any] | None = None, **fixed: Any) -> Reader:
    """The reader for a command's input: the ``import`` source with the importers' options
    (``dataset`` among them: it names the records' source and seeds their ids)."""
    params = {"format": format, **(options or {}), "path": str(source)}  # the argument is the path
    named = fixed.pop("dataset", None)
    dataset = params.pop("dataset", None) or named or source.stem or "input"
    try:
        reader = make_step("source", "import", "input", params, dataset=dataset, **fixed)
    except ValueError as exc:  # an unknown format, from the importer's own check
        raise ConfigError("input", "format", str(exc)) from None
    assert isinstance(reader, Reader)
    reader.label = f"read.{reader.dataset}"
    return reader


def step_specs(spec: str, settings: dict[str, Any], kind: str, seed: int = 0) -> list[PipelineStep]:
    """Steps from ``--step NAME`` plus ``--set`` parameters, or from a YAML file holding one step
    (``{step: NAME, …}``) or a list of them (the ``augment:``/``clean:`` list of a build config),
    each seeded with ``seed``."""
    if Path(spec).suffix in (".yaml", ".yml"):
        steps = load_step_file(Path(spec), kind, settings)
    else:
        steps = make_steps([{"step": spec}], kind, "--step", settings)
    for step in steps:
        step.seed = seed  # type: ignore[attr-defined]
    return steps


DEFAULT_CLEAN = [
    {"step": "html_to_text"},
    {"step": "fix_unicode"},
    {"step": "normalize"},
    {"step": "length", "min_words": 1},
    {"step": "pii"},
    {"step": "exact_dedup"},
    {"step": "near_dedup"},
]
"""The ``clean`` command's steps when no config names them."""


def clean_steps(config: Path | None) -> list[PipelineStep]:
    """The ``clean:`` list of a YAML file, or :data:`DEFAULT_CLEAN`."""
    return load_step_file(config, "clean") if config else make_steps(DEFAULT_CLEAN, "clean", "clean", {})


def ratios_by_name(ratios: str, names: str) -> dict[str, float]:
    """``"0.8,0.1,0.1"`` and ``"train,validation,test"`` paired up; ``ValueError`` when they do not pair."""
    split_names = [name.strip() for name in names.split(",")]
    values = [float(value) for value in ratios.split(",")]
    if len(values) != len(split_names):
        raise ValueError(f"{len(values)} ratios for {len(split_names)} split names")
    return dict(zip(split_names, values, strict=True))


def splitter_step(params: dict[str, Any], seed: int) -> PipelineStep:
    """The ``split`` command's stratified splitter, labelled as a build's would be."""
    splitter = make_step("split", "stratified", "split", params)
    splitter.seed, splitter.label = seed, "split.stratified"  # type: ignore[attr-defined]
    return splitter


def run_partial(
    steps: list[PipelineStep],
    out: Path,
    workers: int | None,
    console: Console,
    seed: int = 0,
    *,
    splits: Sequence[str] | None = None,
) -> PartialResult:
    """Run ``steps`` (readers first) and publish the result at ``out``: a records JSONL with its
    rejects in ``<out stem>.rejects/`` (one file per step that rejected; ``.rejects.jsonl`` for an
    import, whose one step is its reader), or, with ``splits``, a directory of one JSONL per
    split, the split report, the rejects and a manifest that ``split --previous`` reads."""
    if splits is not None and out.exists():  # before any work, not after it
        raise InputError(str(out), "already exists; choose a new output directory")
    work_dir = out.parent / f".{out.name}.work"
    runner = PipelineRunner(work_dir, workers, console)
    try:
        with FileLock(work_dir / ".lock").acquire(on_wait=lambda: console.print(f"waiting for another run on {out}…")):
            segments = runner.run_pipeline(steps, seed)
            final = runner.records_of(segments[-1])
            if splits is not None:
                _publish_splits(runner, segments, final, out, splits)
                rejects = out / "rejects"
            else:
                rejects = _publish_rejects(runner, segments, out, single=len(steps) == 1)
                atomic_move(final, out)
    except CorpusmillError:
        shutil.rmtree(work_dir, ignore_errors=True)  # bad input: nothing to resume, nothing left
        raise
    shutil.rmtree(work_dir, ignore_errors=True)
    return PartialResult(out, rejects, segments)


def atomic_move(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` in one rename (the work dir sits beside the output)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source.replace(target)


def _reject_files(runner: PipelineRunner, segments: list[SegmentResult]) -> list[Path]:
    files = []
    for segment in segments:
        directory = runner.work_dir / segment.name / "rejects"
        files.extend(
            directory / step.rejects_file for step in segment.steps if (directory / step.rejects_file).exists()
        )
    return files


def _publish_rejects(runner: PipelineRunner, segments: list[SegmentResult], out: Path, single: bool) -> Path:
    files = _reject_files(runner, segments)
    if single:
        target = out.with_name(out.stem + ".rejects.jsonl")
        with atomic_write(target, "wb") as handle:
            for path in files:
                with path.open("rb") as rejects:
                    shutil.copyfileobj(rejects, handle)
        return target
    target = out.with_name(out.stem + ".rejects")
    staged = out.with_name(f".{target.name}.new")
    shutil.rmtree(staged, ignore_errors=True)
    with atomic_directory(staged) as tmp:
        for path in files:
            shutil.copyfile(path, tmp / path.name)
    shutil.rmtree(target, ignore_errors=True)
    staged.replace(target)
    return target


def _publish_splits(
    runner: PipelineRunner, segments: list[SegmentResult], records: Path, out: Path, splits: Sequence[str]
) -> None:
    counts: Counter[str] = Counter()
    with atomic_directory(out) as tmp:
        handles = {name: (tmp / f"{name}.jsonl").open("w", encoding="utf-8") for name in splits}
        try:
            with records.open(encoding="utf-8") as lines:
                for line in lines:
                    name = json.loads(line)["split"]
                    handles[name].write(line)
                    counts[name] += 1
        finally:
            for handle in handles.values():
                handle.close()
        (tmp / "rejects").mkdir()
        for path in _reject_files(runner, segments):
            shutil.copyfile(path, tmp / "rejects" / path.name)
        split_steps = [step for step in (s for seg in segments for s in seg.steps) if step.kind == "split"]
        write_json(tmp / "split_report.json", split_steps[-1].report)
        result = PartialResult(out, tmp / "rejects", segments)
        write_json(
            tmp / "manifest.json",
            {
                "format": SPLIT_OUTPUT_FORMAT,
                "splits": {name: {"jsonl": f"{name}.jsonl", "records": counts[name]} for name in splits},
                "accounting": result.accounting,
            },
        )
