"""The one record shape every stage reads and writes.

A record is one training example: plain ``text`` or an OpenAI-style chat (``messages``), an optional
label, the group it must stay with across splits, and where it came from. Records serialise to a
JSON line and to a fixed set of parquet columns (``meta`` and ``augmentation`` travel as JSON
strings there, because their keys differ from record to record).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from corpusmill.errors import InputError

# Arrow's default allocator (mimalloc) keeps what decoding a parquet shard used (about 65 MB for a
# 100,000-row shard) for later reuse, so a release's write and verify grew with its shard count;
# the system allocator hands it back, at the same speed here.
pa.set_memory_pool(pa.system_memory_pool())

Role = Literal["system", "user", "assistant", "tool"]


def _unset(value: Any) -> bool:
    return value is None


class ToolFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    arguments: str
    """The call's arguments as a JSON string, as OpenAI writes them."""


class ToolCall(BaseModel):
    """One function call an assistant turn makes (OpenAI's ``tool_calls`` item)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: ToolFunction


class Message(BaseModel):
    """One chat turn. Beside ``role`` and ``content``, what tool-using chats say: an assistant's
    ``tool_calls`` (its ``content`` may then be empty), a tool turn's ``tool_call_id`` (the call it
    answers), a speaker's ``name`` and OpenAI's per-turn ``weight``. Those are left out of the
    record's JSON when unset, so a plain chat is ``{"content", "role"}`` as before."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str
    name: str | None = Field(default=None, exclude_if=_unset)
    tool_calls: list[ToolCall] | None = Field(default=None, exclude_if=_unset)
    tool_call_id: str | None = Field(default=None, exclude_if=_unset)
    weight: Literal[0, 1] | None = Field(default=None, exclude_if=_unset)

    @model_validator(mode="after")
    def _tool_fields_fit_the_role(self) -> Message:
        if self.tool_calls is not None and (self.role != "assistant" or not self.tool_calls):
            raise ValueError("tool_calls must be a non-empty list on an assistant message")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError("tool_call_id is only allowed on tool messages")
        if self.weight is not None and self.role != "assistant":
            raise ValueError("weight is only allowed on assistant messages")
        return self

    @property
    def has_extras(self) -> bool:
        """Whether the turn sets any field beyond role and content."""
        return any(getattr(self, key) is not None for key in MESSAGE_EXTRAS)


MESSAGE_EXTRAS = ("name", "tool_calls", "tool_call_id", "weight")


class Source(BaseModel):
    """Where a record came from: a crawl of a URL or an import of a file."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["crawl", "import"]
    uri: str
    dataset: str
    fetched_at: str | None = None


class Augmentation(BaseModel):
    """How a derived record was made from its parent."""

    model_config = ConfigDict(extra="forbid")

    method: str
    params: dict[str, Any] = Field(default_factory=dict)


class Record(BaseModel):
    """One training example."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    text: str | None = None
    messages: list[Message] | None = None
    label: str | list[str] | None = None
    group: str | None = None
    split: str | None = None
    source: Source
    meta: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    augmentation: Augmentation | None = None

    @field_validator("messages")
    @classmethod
    def _messages_not_empty(cls, messages: list[Message] | None) -> list[Message] | None:
        if messages is not None and not messages:
            raise ValueError("must hold at least one message")
        return messages

    @model_validator(mode="after")
    def _one_body(self) -> Record:
        if (self.text is None) == (self.messages is None):
            raise ValueError("exactly one of 'text' or 'messages' must be set")
        return self

    @property
    def body(self) -> str:
        """The text a length, a hash or a language check should look at."""
        if self.text is not None:
            return self.text
        return "\n".join(m.content for m in self.messages or [])

    @property
    def group_key(self) -> str:
        """The key that must not be split across train/validation/test (the id when no group)."""
        return self.group or self.id

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, line: str, where: str = "<record>") -> Record:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(where, f"invalid JSON: {exc.msg} at column {exc.colno}") from exc
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: Any, where: str = "<record>") -> Record:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InputError(where, describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's errors as one line that names each field by its dotted path."""
    parts = []
    for err in exc.errors():
        path = dotted_path(err["loc"])
        parts.append(f"{path}: {err['msg']}" if path else err["msg"])
    return "; ".join(parts)


def dotted_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def content_id(dataset: str, text: str | None, messages: list[dict[str, str]] | None) -> str:
    """A stable id from what a record says, so re-importing a reordered file keeps every id."""
    body = text if text is not None else json.dumps(messages, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(f"{dataset}\0{body}".encode()).hexdigest()
    return f"{dataset}-{digest[:16]}"


# --- parquet columns -------------------------------------------------------------------------

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
TOOL_CALL_TYPE = pa.struct(
    [
        ("id", pa.string()),
        ("type", pa.string()),
        ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())])),
    ]
)
FULL_MESSAGE_TYPE = pa.struct(
    [
        ("role", pa.string()),
        ("content", pa.string()),
        ("name", pa.string()),
        ("tool_calls", pa.list_(TOOL_CALL_TYPE)),
        ("tool_call_id", pa.string()),
        ("weight", pa.int64()),
    ]
)
"""A turn with every field, for releases whose chats call tools (or name speakers, or weigh
turns); other releases keep :data:`MESSAGE_TYPE`, so their rows have no columns of nulls."""
SOURCE_TYPE = pa.struct(
    [("kind", pa.string()), ("uri", pa.string()), ("dataset", pa.string()), ("fetched_at", pa.string())]
)


def arrow_schema(multi_label: bool, label_names: Sequence[str] = (), full_messages: bool = False) -> pa.Schema:
    """The release's column types; ``label`` is a list column only for multi-label datasets, and
    messages have all of :data:`FULL_MESSAGE_TYPE`'s fields only with ``full_messages``.

    With ``label_names`` (the labels of a classification release, in order) the label column holds
    each label's index among them, and the schema's ``huggingface`` metadata declares it a
    ``ClassLabel`` (``List(ClassLabel)`` for multi-label), as ``datasets`` writes it: then
    ``load_dataset`` gives ``features["label"].names`` and trainers get ids, from the card's
    configs and from any one parquet file alike."""
    label_type: pa.DataType = pa.int64() if label_names else pa.string()
    if multi_label:
        label_type = pa.list_(label_type)
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("messages", pa.list_(FULL_MESSAGE_TYPE if full_messages else MESSAGE_TYPE)),
            ("label", label_type),
            ("group", pa.string()),
            ("split", pa.string()),
            ("source", SOURCE_TYPE),
            ("meta", pa.string()),
            ("parent_id", pa.string()),
            ("augmentation", pa.string()),
        ]
    )
    if not label_names:
        return schema
    feature: dict[str, Any] = {"names": list(label_names), "_type": "ClassLabel"}
    if multi_label:
        feature = {"feature": feature, "_type": "List"}
    # datasets takes a column's feature from this metadata when its arrow type matches, and
    # infers the others (``Features.from_arrow_schema``), so naming the label column alone is enough
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": {"label": feature}}})})


def class_labels(features: Any) -> dict[str, list[str]]:
    """The columns a ``datasets`` features dict (``Features.to_dict()``, the form parquet
    metadata holds) declares ``ClassLabel`` — or a list of them — each with its label names."""
    found = {}
    for column, feature in features.items() if isinstance(features, dict) else ():
        inner = feature.get("feature") if isinstance(feature, dict) and feature.get("_type") in LIST_TYPES else feature
        if isinstance(inner, dict) and inner.get("_type") == "ClassLabel" and isinstance(inner.get("names"), list):
            found[column] = [str(name) for name in inner["names"]]
    return found


LIST_TYPES = ("List", "Sequence", "LargeList")
"""How ``datasets`` versions name a list feature in its dict form."""


def parquet_class_labels(schema: pa.Schema) -> dict[str, list[str]]:
    """:func:`class_labels` of a parquet file written by ``datasets`` (or a corpusmill release):
    from its schema's ``huggingface`` metadata; none when it has none or it is not JSON."""
    metadata = (schema.metadata or {}).get(b"huggingface")
    try:
        info = json.loads(metadata)["info"] if metadata else {}
    except (ValueError, KeyError, TypeError):
        return {}
    return class_labels(info.get("features") if isinstance(info, dict) else None)


def _json_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def to_row(record: Record, label_ids: dict[str, int] | None = None, full_messages: bool = False) -> dict[str, Any]:
    """The record as one parquet row (see :func:`arrow_schema`); with ``label_ids`` (each label's
    index among the release's ``label_names``) its label as their indices, and with
    ``full_messages`` every message with all its fields (unset ones null, as parquet reads back)."""
    data = record.to_dict()
    if full_messages and data["messages"]:
        data["messages"] = [dict.fromkeys(FULL_MESSAGE_TYPE.names) | message for message in data["messages"]]
    if label_ids is not None and data["label"] is not None:
        label = data["label"]
        data["label"] = [label_ids[name] for name in label] if isinstance(label, list) else label_ids[label]
    data["meta"] = _json_or_none(data["meta"])
    data["augmentation"] = _json_or_none(data["augmentation"])
    return data


def from_row(row: dict[str, Any]) -> Record:
    """Inverse of :func:`to_row` (for a row whose labels are names again: see the parquet reader)."""
    data = dict(row)
    if data.get("messages"):
        data["messages"] = [{k: v for k, v in m.items() if v is not None} for m in data["messages"]]
    data["meta"] = json.loads(data["meta"]) if data.get("meta") else {}
    data["augmentation"] = json.loads(data["augmentation"]) if data.get("augmentation") else None
    return Record.model_validate(data)
