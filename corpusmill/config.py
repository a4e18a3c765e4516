"""The build config: one YAML file, validated up front, every error naming its key path.

Step sections (``sources``, ``clean``, ``split``, ``augment``) name a registered step and give its
parameters inline; each step's own ``Params`` model validates them, so an unknown key or a bad
value is reported as e.g. ``clean[1].min_chars: Input should be a valid integer``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.json_schema import models_json_schema

from corpusmill.errors import ConfigError
from corpusmill.registry import get_step, registered_steps
from corpusmill.schema import dotted_path
from corpusmill.steps import Augmenter, PipelineStep, Reader, Splitter
from corpusmill.validators import PathOrName, nesting_depth_over, outside, path_values

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_NESTING = 32
"""Lists and mappings nested deeper than this are refused: no real config needs it, and deep
nesting is how a hostile config exhausts the parser's stack."""


class StepSpec(BaseModel):
    """``{step: NAME, **params}`` in the ``clean`` and ``augment`` lists."""

    model_config = ConfigDict(extra="allow")

    step: str

    @property
    def step_params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SourceSpec(BaseModel):
    """``{type: NAME, dataset: NAME, **params}`` in the ``sources`` list."""

    model_config = ConfigDict(extra="allow")

    type: str
    dataset: str | None = None
    on_error: str = "raise"
    path: PathOrName | None = None
    """The file or directory the source reads (relative to the config file)."""

    @field_validator("dataset")
    @classmethod
    def _safe_dataset(cls, value: str | None) -> str | None:
        if value is not None and not SAFE_NAME.match(value):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 100)")
        return value

    @field_validator("on_error")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in ("raise", "skip"):
            raise ValueError("must be 'raise' or 'skip'")
        return value

    @property
    def step_params(self) -> dict[str, Any]:
        extra = dict(self.model_extra or {})
        return extra if self.path is None else {**extra, "path": self.path}


class SplitSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    method: str = "stratified"

    @property
    def step_params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ReleaseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    version: str
    output_dir: Path = Path("releases")
    description: str = ""
    license: str = "other"
    language: list[str] = ["en"]
    task_categories: list[str] = []
    max_rows_per_shard: int = Field(default=100_000, gt=0)
    exports: list[Literal["openai", "sharegpt", "alpaca", "prompt-completion", "messages"]] = []
    """Also write chat records as fine-tuning files: ``exports/<format>/<split>.jsonl``."""
    tokenizer: PathOrName | None = None
    """Count every record's tokens with the tokenizer that will train on it (``smollm2``,
    ``minilm``, a model directory or a cached hub id; chats through its chat template): per
    split in the card (table and histogram) and the manifest."""
    max_tokens: int | None = Field(default=None, gt=0)
    """With ``tokenizer``: the model's context; records over it are counted and named, and the card warns."""

    @model_validator(mode="after")
    def _max_tokens_needs_a_tokenizer(self) -> ReleaseSpec:
        if self.max_tokens is not None and self.tokenizer is None:
            raise ValueError("max_tokens needs a tokenizer to count with (release.tokenizer)")
        return self

    @field_validator("name", "version")
    @classmethod
    def _safe_path_part(cls, value: str) -> str:
        if not SAFE_NAME.match(value):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 100), starting with a letter or digit")
        return value


class BuildConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    sources: list[SourceSpec] = Field(min_length=1)
    clean: list[StepSpec] = []
    split: SplitSpec = SplitSpec()
    augment: list[StepSpec] = []
    release: ReleaseSpec
    seed: int = 0
    work_dir: Path | None = None

    base_dir: Path = Field(default=Path("."), exclude=True)
    """The config file's directory; relative paths in the config are resolved against it."""

    def resolve(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def release_dir(self) -> Path:
        return self.resolve(self.release.output_dir) / self.release.name / self.release.version

    @property
    def resolved_work_dir(self) -> Path:
        if self.work_dir is not None:
            return self.resolve(self.work_dir)
        return self.base_dir / ".corpusmill" / "work" / f"{self.release.name}-{self.release.version}"

    def as_dict(self) -> dict[str, Any]:
        """The config as written (paths unresolved): what the manifest records and hashes."""
        return self.model_dump(mode="json", exclude={"base_dir"})

    # --- steps -------------------------------------------------------------------------------

    def dataset_name(self, index: int) -> str:
        spec = self.sources[index]
        if spec.dataset:
            return spec.dataset
        path = spec.step_params.get("path")
        return Path(path).stem if path else f"source{index}"

    @property
    def split_names(self) -> list[str]:
        """The splits the splitter makes, in config order (read from its parameters, not built)."""
        params = _step_class("split", self.split.method, "split").Params.model_validate(self.split.step_params)
        return list(params.ratios)  # type: ignore[attr-defined]

    def pipeline(self) -> list[PipelineStep]:
        """The build as one list of steps, in the order records meet them: readers, clean steps,
        the splitter, augmenters. Each step's label says which section of this file made it
        (``read.<dataset>``, ``clean.length``, ``split.stratified``, ``augment.backtranslate``);
        the executor runs the list and knows none of these names."""
        readers: list[PipelineStep] = list(self.make_readers())
        for reader in readers:
            reader.label = f"read.{reader.dataset}"  # type: ignore[attr-defined]
        return [
            *readers,
            *label_steps(self.make_clean_steps(), "clean."),
            *label_steps([self.make_splitter()], "split."),
            *label_steps(self.make_augmenters(), "augment."),
        ]

    def make_readers(self) -> list[Reader]:
        readers = []
        for index, spec in enumerate(self.sources):
            params = spec.step_params
            if "path" in params:
                params["uri"] = str(params["path"])
                params["path"] = str(self.resolve(params["path"]))
            reader = make_step(
                "source",
                spec.type,
                f"sources[{index}]",
                params,
                dataset=self.dataset_name(index),
                on_error=spec.on_error,
            )
            assert isinstance(reader, Reader)
            readers.append(reader)
        return readers

    def make_clean_steps(self) -> list[PipelineStep]:
        return label_steps(
            [
                make_step("clean", spec.step, key, self._resolve_paths("clean", spec.step, key, spec.step_params))
                for key, spec in ((f"clean[{i}]", spec) for i, spec in enumerate(self.clean))
            ]
        )

    def make_splitter(self) -> Splitter:
        params = self._resolve_paths("split", self.split.method, "split", self.split.step_params)
        splitter = make_step("split", self.split.method, "split", params, seed=self.seed)
        assert isinstance(splitter, Splitter)
        return splitter

    def make_augmenters(self) -> list[Augmenter]:
        steps = [
            make_step(
                "augment",
                spec.step,
                key,
                self._resolve_paths("augment", spec.step, key, spec.step_params),
                seed=self.seed,
            )
            for key, spec in ((f"augment[{i}]", spec) for i, spec in enumerate(self.augment))
        ]
        return label_steps(steps)  # type: ignore[return-value]

    def _resolve_paths(self, kind: str, name: str, key: str, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with every relative path it sets resolved against the config's directory,
        where :meth:`confine_paths` checked it: a step opens what was checked, whatever the
        process's working directory (a service's is not its workspace). A ``LocalPath`` string
        that names nothing there is left alone: it is a hub id."""
        try:
            model = _step_class(kind, name, key).Params.model_validate(params)
        except ValidationError:
            return params  # make_step reports it, with its key path
        resolved = copy.deepcopy(params)
        for path_key, value in path_values(model):
            target = self.resolve(value)
            if isinstance(value, Path) or target.exists():
                _set_key_path(resolved, path_key, str(target))
        return resolved

    def step_sections(self) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        """``(key path, step kind, step name, parameters)`` of every step the config names."""
        for index, source in enumerate(self.sources):
            yield f"sources[{index}]", "source", source.type, source.step_params
        for index, spec in enumerate(self.clean):
            yield f"clean[{index}]", "clean", spec.step, spec.step_params
        yield "split", "split", self.split.method, self.split.step_params
        for index, spec in enumerate(self.augment):
            yield f"augment[{index}]", "augment", spec.step, spec.step_params

    def params_models(self) -> Iterator[tuple[str, BaseModel]]:
        """Every step's parameters parsed by its own ``Params`` model (nothing is opened or loaded),
        with the key path it was written at: what generic checks walk."""
        for key, kind, name, params in self.step_sections():
            cls = _step_class(kind, name, key)
            try:
                yield key, cls.Params.model_validate(params)
            except ValidationError as exc:
                raise _params_error(key, exc, cls.Params) from None

    def confine_paths(self, root: Path) -> None:
        """Refuse any path the config sets (``Path`` fields and fields marked ``LocalPath``, in the
        config and in every step's parameters) that resolves outside ``root`` after symlinks.

        Found from the models' types, so a new step's path parameter is covered with no edit here;
        checked before any step is built, so nothing outside is opened or even tested for existence.
        """
        for prefix, model in [("", self), *self.params_models()]:
            for key, value in path_values(model, prefix):
                if outside(root, self.base_dir, value):
                    raise ConfigError("config", key, "must stay inside the workspace (after following symlinks)")

    def validate_steps(self) -> None:
        """Build every step once so that bad step parameters fail before any work starts."""
        self.make_readers()
        self.make_clean_steps()
        self.make_splitter()
        self.make_augmenters()


def load_step_file(path: Path, kind: str, settings: dict[str, Any] | None = None) -> list[PipelineStep]:
    """Steps of one kind from a YAML file: a build config or a file with its ``<kind>:`` list,
    a bare list of ``{step: NAME, …}``, or one such step, whose parameters ``settings`` (the
    command line's ``--set``) may add to or override."""
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(where, "", f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(where, "", f"invalid YAML: {exc}") from None
    if isinstance(data, dict) and "step" not in data:
        data = data.get(kind)
        if not isinstance(data, list):
            raise ConfigError(where, kind, "must be a list of steps")
    entries = data if isinstance(data, list) else [data]
    if settings and len(entries) != 1:
        raise ConfigError(where, kind, "--set applies to one step; this file holds several")
    return make_steps(entries, kind, where, settings or {})


def make_steps(entries: list[Any], kind: str, where: str, settings: dict[str, Any]) -> list[PipelineStep]:
    """Build ``{step: NAME, **params}`` entries as labelled steps (``<kind>.<name>``); an error
    names ``where`` and the entry (``clean[1].min_chars``)."""
    steps = []
    for index, entry in enumerate(entries):
        try:
            parsed = StepSpec.model_validate(entry)
        except ValidationError as exc:
            raise ConfigError(where, f"{kind}[{index}]", _clean_msg(exc.errors()[0]["msg"])) from None
        try:
            steps.append(make_step(kind, parsed.step, f"{kind}[{index}]", {**parsed.step_params, **settings}))
        except ConfigError as exc:
            raise exc.at(where) from None
    return label_steps(steps, f"{kind}.")


def _step_class(kind: str, name: str, path: str) -> type[PipelineStep]:
    name_key = {"source": "type", "split": "method"}.get(kind, "step")
    try:
        return get_step(kind, name)
    except KeyError as exc:
        raise ConfigError("config", f"{path}.{name_key}", str(exc.args[0])) from None


def _params_error(path: str, exc: ValidationError, params: type[BaseModel] | None = None) -> ConfigError:
    err = exc.errors()[0]
    key = dotted_path(err["loc"])
    message = _clean_msg(err["msg"])
    if err["type"] == "extra_forbidden" and params is not None and len(err["loc"]) == 1:
        message = _unknown_key(params)
    return ConfigError("config", f"{path}.{key}" if key else path, message)


def _unknown_key(model: type[BaseModel]) -> str:
    """The message for a misspelled key: which keys the place takes."""
    allowed = [name for name, field in model.model_fields.items() if not field.exclude]
    return f"unknown key (allowed: {', '.join(allowed)})"


def make_step(kind: str, name: str, path: str, params: dict[str, Any], **fixed: Any) -> PipelineStep:
    cls = _step_class(kind, name, path)
    try:
        return cls(**fixed, **params)
    except ValidationError as exc:
        raise _params_error(path, exc, cls.Params) from None
    except TypeError as exc:
        raise ConfigError("config", path, str(exc)) from None


def label_steps(steps: list[PipelineStep], prefix: str = "") -> list[PipelineStep]:
    """Give repeated steps distinct labels (``length``, ``length.2``) for stats and reject files."""
    seen: dict[str, int] = {}
    for step in steps:
        seen[step.name] = seen.get(step.name, 0) + 1
        step.label = prefix + (step.name if seen[step.name] == 1 else f"{step.name}.{seen[step.name]}")
    return steps


def _set_key_path(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b[2].c`` (a key path as :func:`path_values` writes it) inside nested dicts and lists."""
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in re.split(r"\.|\[|\]", key) if p]
    target: Any = data
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = value


def _clean_msg(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def load_config(path: Path, workspace: Path | None = None) -> BuildConfig:
    """Parse and validate a build config; raise :class:`ConfigError` with the key path.

    With ``workspace``, every path in it must resolve inside that directory (service jobs).
    """
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(where, "", f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(where, "", f"{line}invalid YAML: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise ConfigError(where, "", f"nested deeper than {MAX_NESTING} levels") from None
    return parse_config(data, where, path.resolve().parent, workspace)


STEP_LIST_KEYS = {"read": "sources", "clean": "clean", "split": "split", "augment": "augment", "write": "release"}
"""In a ``steps:`` list, the key that names each entry's step, and the section it fills."""


def sections_from_steps(data: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A config written as one ``steps:`` list (readers, clean steps, the splitter, augmenters,
    then ``write: release``), as the sections the rest of corpusmill reads — and, for error
    messages, where each section entry came from (``clean[1]`` → ``steps[3]``)."""
    steps = data["steps"]
    if not isinstance(steps, list) or not steps:
        raise ConfigError(where, "steps", "must be a non-empty list of steps")
    clash = sorted(set(data) & set(STEP_LIST_KEYS.values()))
    if clash:
        raise ConfigError(where, clash[0], "give either a steps list or sections, not both")
    out: dict[str, Any] = {key: value for key, value in data.items() if key != "steps"}
    origin: dict[str, str] = {}
    order = list(STEP_LIST_KEYS)
    last = 0
    for index, entry in enumerate(steps):
        named = [key for key in STEP_LIST_KEYS if isinstance(entry, dict) and key in entry]
        if len(named) != 1:
            raise ConfigError(where, f"steps[{index}]", f"name the step with exactly one of: {', '.join(order)}")
        kind = named[0]
        if order.index(kind) < last:
            raise ConfigError(
                where, f"steps[{index}]", f"a {kind} step after a {order[last]} step; order: {', '.join(order)}"
            )
        last = order.index(kind)
        params = {key: value for key, value in entry.items() if key != kind}
        section = STEP_LIST_KEYS[kind]
        if kind == "write":
            if entry[kind] != "release" or "release" in out:
                raise ConfigError(where, f"steps[{index}].write", "the one writer is 'release', written last")
            out["release"], origin["release"] = params, f"steps[{index}]"
        elif kind == "split":
            if "split" in out:
                raise ConfigError(where, f"steps[{index}]", "a build has one splitter")
            out["split"], origin["split"] = {"method": entry[kind], **params}, f"steps[{index}]"
        else:
            name_key = "type" if kind == "read" else "step"
            entries = out.setdefault(section, [])
            origin[f"{section}[{len(entries)}]"] = f"steps[{index}]"
            entries.append({name_key: entry[kind], **params})
    if "release" not in out:
        raise ConfigError(where, "steps", "end with a 'write: release' step naming the release (name, version)")
    return out, origin


def from_step_list(error: ConfigError, origin: dict[str, str]) -> ConfigError:
    """A section's key path in an error, told as the ``steps[i]`` entry the user wrote."""
    for section, step in origin.items():
        if error.path == section or error.path.startswith((f"{section}.", f"{section}[")):
            return ConfigError(error.where, step + error.path[len(section) :], error.message)
    return error


def parse_config(data: Any, where: str, base_dir: Path, workspace: Path | None = None) -> BuildConfig:
    """Validate a parsed build config whose relative paths resolve against ``base_dir``.

    The config gives its steps either as sections (``sources``, ``clean``, ``split``, ``augment``,
    ``release``) or as one ``steps:`` list in that order."""
    deep = nesting_depth_over(data, MAX_NESTING)
    if deep is not None:
        raise ConfigError(where, deep, f"nested deeper than {MAX_NESTING} levels")
    if not isinstance(data, dict):
        raise ConfigError(where, "", "must be a YAML mapping with sources, clean, split, augment, release")
    if "steps" not in data:
        return _parse_sections(data, where, base_dir, workspace)
    sections, origin = sections_from_steps(data, where)
    try:
        return _parse_sections(sections, where, base_dir, workspace)
    except ConfigError as exc:
        raise from_step_list(exc, origin) from None


def _parse_sections(data: dict[str, Any], where: str, base_dir: Path, workspace: Path | None) -> BuildConfig:
    try:
        config = BuildConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()  # a misspelt key first: it usually explains the "Field required" beside it
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        msg = _clean_msg(err["msg"])
        if err["type"] == "extra_forbidden":
            place = {1: BuildConfig, 2: ReleaseSpec if err["loc"][0] == "release" else None}.get(len(err["loc"]))
            msg = _unknown_key(place) if place else "unknown key"
        raise ConfigError(where, dotted_path(err["loc"]), msg) from None
    config.base_dir = base_dir
    try:
        if workspace is not None:
            config.confine_paths(workspace)
        config.validate_steps()
    except ConfigError as exc:
        raise exc.at(where) from None
    return config


SECTIONS = {
    "sources": ("source", "type"),
    "clean": ("clean", "step"),
    "split": ("split", "method"),
    "augment": ("augment", "step"),
}
"""Each step section of a build config: the step kind it holds and the key that names the step."""


def build_config_schema() -> dict[str, Any]:
    """A JSON Schema of the build config with every registered step's parameters (types,
    defaults, docs), so YAML editors complete and check a config as ``corpusmill build`` would:
    either form, sections or one ``steps:`` list."""
    steps = [cls for cls in registered_steps() if cls.kind in {kind for kind, _ in SECTIONS.values()}]
    keyed, schema = models_json_schema(
        [(BuildConfig, "validation"), *((cls.Params, "validation") for cls in steps)],
        title="corpusmill build config",
    )
    defs = schema["$defs"]
    config = defs["BuildConfig"]
    source_keys = {"dataset": SourceSpec.model_fields["dataset"], "on_error": SourceSpec.model_fields["on_error"]}

    def variant(cls: type[PipelineStep], name_key: str, required_name: bool) -> dict[str, Any]:
        """One step's entry: the key naming it, then its own parameters and nothing else."""
        params = defs[keyed[(cls.Params, "validation")]["$ref"].rsplit("/", 1)[-1]]
        own: dict[str, Any] = {name_key: {"const": cls.name, "description": _first_line(cls.__doc__)}}
        if cls.kind == "source":
            own |= {
                key: {"type": "string", "description": field.description or ""} for key, field in source_keys.items()
            }
        return {
            "title": f"{cls.kind} step {cls.name}",
            "type": "object",
            "properties": {**own, **params.get("properties", {})},
            "required": [name_key] * required_name + params.get("required", []),
            "additionalProperties": False,
        }

    for section, (kind, name_key) in SECTIONS.items():
        items = {"anyOf": [variant(cls, name_key, kind != "split") for cls in steps if cls.kind == kind]}
        config["properties"][section] = items if section == "split" else {"type": "array", "items": items}
    config.pop("title", None)
    config["properties"].pop("base_dir", None)  # set from the file's location, never written in it
    kind_of_key = {key: SECTIONS[section][0] for key, section in STEP_LIST_KEYS.items() if section in SECTIONS}
    entries = [variant(cls, key, True) for key, kind in kind_of_key.items() for cls in steps if cls.kind == kind]
    writer = defs["ReleaseSpec"]
    entries.append(
        {
            "title": "write the release",
            "type": "object",
            "properties": {"write": {"const": "release"}, **writer["properties"]},
            "required": ["write", *writer.get("required", [])],
            "additionalProperties": False,
        }
    )
    listed = {
        "title": "a build as one steps list",
        "type": "object",
        "properties": {
            "steps": {"type": "array", "minItems": 2, "items": {"anyOf": entries}},
            **{key: config["properties"][key] for key in ("seed", "work_dir")},
        },
        "required": ["steps"],
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "corpusmill build config",
        "anyOf": [{"title": "a build in sections", **config}, listed],
        "$defs": defs,
    }


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ")
