"""Turning one row of a dataset (a dict of columns) into a record, the same way for every format."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from corpusmill.errors import InputError
from corpusmill.schema import Record, Role, Source, content_id


class FieldMapping(BaseModel):
    """Which columns hold the text (or a chat: messages, prompt and response, or dialogue
    turns), label, id and group."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    path: Path
    text: str | None = None
    """Column with the text; ``text`` when no chat column is given."""
    messages: str | None = None
    """Column with OpenAI-style chat messages (``role``, ``content``)."""
    prompt: str | None = None
    """Column with the user's turn: with ``response``, each row becomes a user/assistant chat."""
    response: str | None = None
    """Column with the assistant's reply to ``prompt``."""
    turns: str | None = None
    """Dotted key path to a row's list of dialogue turns (``utterances``): each row one chat."""
    role_key: str = "role"
    """Key of a turn's speaker (with ``turns``)."""
    content_key: str = "content"
    """Key of a turn's text (with ``turns``)."""
    roles: dict[str, Role] = {}
    """Speaker value to chat role (``USER=user,SYSTEM=assistant``); without it, speakers must
    already be system, user or assistant."""
    system: str | None = None
    """A system prompt put first in every chat made from ``prompt``/``response`` or ``turns``."""
    system_col: str | None = None
    """Column with each row's system prompt (instead of ``system``); an empty cell adds none."""
    label: str | None = None
    label_sep: str | None = None
    """Split a label string on this separator for multi-label data (e.g. ``|``)."""
    id: str | None = None
    group: str | None = None
    meta: list[str] = []
    """Extra columns copied into ``record.meta``."""
    encoding: str | None = None
    """Text encoding; detected with charset-normalizer when not given."""

    @property
    def chat(self) -> bool:
        """Rows become chats (from ``messages``, ``prompt``/``response`` or ``turns``)."""
        return bool(self.messages or self.prompt or self.turns)

    @property
    def text_column(self) -> str | None:
        return None if self.chat else (self.text or "text")

    @property
    def columns(self) -> list[str]:
        """Every column the mapping reads; a file lacking one is rejected up front."""
        turns = self.turns.split(".")[0] if self.turns else None
        named = [self.text_column, self.messages, self.prompt, self.response, turns, self.system_col]
        named += [self.label, self.id, self.group, *self.meta]
        return [column for column in named if column]

    @field_validator("roles", mode="before")
    @classmethod
    def _roles_from_text(cls, value: Any) -> Any:
        """``USER=user,SYSTEM=assistant`` (a command-line option) as a mapping."""
        if not isinstance(value, str):
            return value
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep or not speaker.strip() for speaker, sep, _ in pairs):
            raise ValueError("write roles as SPEAKER=role pairs separated by commas (USER=user,SYSTEM=assistant)")
        return {speaker.strip(): role.strip() for speaker, _, role in pairs}

    @model_validator(mode="after")
    def _one_body(self) -> FieldMapping:
        given = [name for name in ("text", "messages", "prompt", "turns") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(f"give one of 'text', 'messages', 'prompt' (with 'response') or 'turns', not {given}")
        if bool(self.prompt) != bool(self.response):
            raise ValueError("'prompt' and 'response' go together: the user's column and the assistant's")
        if (self.system or self.system_col) and not (self.prompt or self.turns):
            raise ValueError("'system' and 'system_col' add a system prompt to chats made from 'prompt' or 'turns'")
        if self.system and self.system_col:
            raise ValueError("give either 'system' or 'system_col', not both")
        if self.roles and not self.turns:
            raise ValueError("'roles' maps the speakers of 'turns'")
        return self

    def to_record(
        self,
        row: dict[str, Any],
        dataset: str,
        uri: str,
        where: str,
        messages: list[dict[str, str]] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Record:
        """Map one row; ``messages`` (from a chat format) replaces the text column."""
        text = None
        if messages is None and self.messages:
            messages = row.get(self.messages)
            if not isinstance(messages, list):
                raise InputError(where, f"column {self.messages!r} must be a list of messages")
        elif messages is None and self.prompt:
            prompt, response = _string(row, self.prompt, where), _string(row, self.response, where)  # type: ignore[arg-type]
            messages = [*self._system_turn(row, where), {"role": "user", "content": prompt}]
            messages.append({"role": "assistant", "content": response})
        elif messages is None and self.turns:
            messages = [*self._system_turn(row, where), *self._dialogue(row, where)]
        if messages is None:
            text = _string(row, self.text_column, where)  # type: ignore[arg-type]
        data: dict[str, Any] = {
            "id": self._record_id(row, dataset, text, messages, where),
            "text": text,
            "messages": messages,
            "label": self._label(row, where),
            "group": _scalar(row, self.group, where),
            "source": Source(kind="import", uri=uri, dataset=dataset),
            "meta": {**(meta or {}), **{column: _plain(row.get(column)) for column in self.meta}},
        }
        return Record.from_dict(data, where)

    def line_writer(self, dataset: str, uri: str) -> Callable[[dict[str, Any]], tuple[str, str] | None] | None:
        """For a mapping of plain columns (a text, and string labels, ids and groups), a function
        from a row to its record's ``(id, JSON line)`` — the line :meth:`to_record` then
        ``Record.to_json()`` would give, without building and dumping the model — or ``None``
        for a row it cannot vouch for (a missing column, a number where a string was expected),
        which the caller then maps the slow way, errors and all. ``None`` instead of a function
        for mappings with chat messages or meta columns."""
        if self.chat or self.meta:
            return None
        text_column, label_column, id_column, group_column = self.text_column, self.label, self.id, self.group
        label_sep = self.label_sep
        source = json.dumps(
            {"dataset": dataset, "fetched_at": None, "kind": "import", "uri": uri},
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )
        prefix = f"{dataset}\0".encode()

        def line(row: dict[str, Any]) -> tuple[str, str] | None:
            try:
                text = row[text_column]
                label = row[label_column] if label_column else None
                group = row[group_column] if group_column else None
                value = row[id_column] if id_column else None
            except KeyError:
                return None
            if not isinstance(text, str) or not isinstance(label, str | None) or not isinstance(group, str | None):
                return None
            if id_column:
                if not isinstance(value, str) or not value:
                    return None
                record_id = f"{dataset}:{value}"
            else:
                record_id = f"{dataset}-{hashlib.sha256(prefix + text.encode()).hexdigest()[:16]}"
            if not label:
                label_json = "null"
            elif label_sep:
                label_json = (
                    "[" + ",".join(encode_basestring(p.strip()) for p in label.split(label_sep) if p.strip()) + "]"
                )
            else:
                label_json = encode_basestring(label)
            group_json = encode_basestring(group) if group else "null"
            return record_id, (
                f'{{"augmentation":null,"group":{group_json},"id":{encode_basestring(record_id)},'
                f'"label":{label_json},"messages":null,"meta":{{}},"parent_id":null,"source":{source},'
                f'"split":null,"text":{encode_basestring(text)}}}'
            )

        return line

    def _system_turn(self, row: dict[str, Any], where: str) -> list[dict[str, str]]:
        system = self.system
        if self.system_col:
            value = row.get(self.system_col)
            if value is not None and not isinstance(value, str):
                raise InputError(where, f"column {self.system_col!r} must be a string, got {_type_name(value)}")
            system = value or None
        return [{"role": "system", "content": system}] if system else []

    def _dialogue(self, row: dict[str, Any], where: str) -> list[dict[str, str]]:
        """The row's turns under :attr:`turns`, each speaker mapped to a chat role."""
        turns: Any = row
        for key in self.turns.split("."):  # type: ignore[union-attr]
            turns = turns.get(key) if isinstance(turns, dict) else None
        if not isinstance(turns, list) or not turns:
            raise InputError(where, f"{self.turns!r} must be a non-empty list of turns, got {_type_name(turns)}")
        messages = []
        for number, turn in enumerate(turns, start=1):
            at = f"{self.turns}[{number}]"
            if not isinstance(turn, dict):
                raise InputError(where, f"{at} must be an object with {self.role_key!r} and {self.content_key!r}")
            speaker, content = turn.get(self.role_key), turn.get(self.content_key)
            if not isinstance(content, str):
                raise InputError(where, f"{at}.{self.content_key} must be a string, got {_type_name(content)}")
            if not isinstance(speaker, str):
                raise InputError(where, f"{at}.{self.role_key} must be a string, got {_type_name(speaker)}")
            role = self.roles.get(speaker) if self.roles else speaker
            if role not in ROLES:
                if self.roles:
                    why = f"which roles do not map ({', '.join(self.roles)})"
                else:
                    why = f"not a chat role ({', '.join(ROLES)}); map it with roles"
                raise InputError(where, f"{at}.{self.role_key} is {speaker!r}, {why}")
            messages.append({"role": role, "content": content})
        return messages

    def _record_id(
        self, row: dict[str, Any], dataset: str, text: str | None, messages: list[Any] | None, where: str
    ) -> str:
        if self.id:
            value = _scalar(row, self.id, where)
            if not value:
                raise InputError(where, f"column {self.id!r} (the id) is empty")
            return f"{dataset}:{value}"
        return content_id(dataset, text, messages)

    def _label(self, row: dict[str, Any], where: str) -> str | list[str] | None:
        if not self.label:
            return None
        value = row.get(self.label)
        if value is None or value == "":
            return None
        if isinstance(value, (list, tuple)):
            return [str(item) for item in value]
        if isinstance(value, dict):
            raise InputError(where, f"column {self.label!r} must be a string or a list, got an object")
        value = str(value)
        if self.label_sep:
            return [part.strip() for part in value.split(self.label_sep) if part.strip()]
        return value


ROLES: tuple[str, ...] = get_args(Role)
"""The chat roles a record's messages take."""


def _plain(value: Any) -> Any:
    """Parquet and datasets hand back numpy/arrow-friendly values; meta must stay JSON."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _scalar(row: dict[str, Any], column: str | None, where: str) -> str | None:
    if not column:
        return None
    value = row.get(column)
    if isinstance(value, (dict, list)):
        raise InputError(where, f"column {column!r} must be a single value")
    return None if value is None or value == "" else str(value)


def _string(row: dict[str, Any], column: str, where: str) -> str:
    value = row.get(column)
    if not isinstance(value, str):
        raise InputError(where, f"column {column!r} must be a string, got {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def excerpt(raw: str, limit: int = 60) -> str:
    """A short, one-line excerpt of a bad line for error messages."""
    flat = raw.strip().replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
