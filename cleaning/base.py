"""Text mappers apply one text function to plain records and, message by message, to chats."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from corpusmill.schema import Record
from corpusmill.steps import DropRecord, Mapper

REQUIRED_ROLES = ("user", "assistant")
"""A chat whose user or assistant turn is emptied by cleaning teaches nothing: it is rejected."""


class TextParams(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    roles: list[str] = ["system", "user", "assistant", "tool"]
    """Which chat turns the step rewrites (all by default)."""


class TextMapper(Mapper):
    Params: ClassVar[type[BaseModel]] = TextParams

    @abstractmethod
    def clean_text(self, text: str, record: Record) -> str:
        """The cleaned text (``record`` is there for steps that note counts in its ``meta``)."""

    def transform(self, record: Record) -> Record:
        if record.text is not None:
            text = self.clean_text(record.text, record)
            if not text.strip():
                raise DropRecord(f"empty_after_{self.name}")
            return record.model_copy(update={"text": text})
        roles = self.params.roles  # type: ignore[attr-defined]
        messages = [
            m.model_copy(update={"content": self.clean_text(m.content, record)}) if m.role in roles else m
            for m in record.messages or []
        ]
        emptied = [m.role for m in messages if m.role in REQUIRED_ROLES and not (m.content.strip() or m.tool_calls)]
        if emptied:
            raise DropRecord(f"empty_{emptied[0]}_turn_after_{self.name}")
        return record.model_copy(update={"messages": messages})
