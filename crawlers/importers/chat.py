"""Chat fine-tuning files: OpenAI ``messages``, ShareGPT ``conversations`` and Alpaca rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from corpusmill.chatformats import READERS, ChatFormatError
from corpusmill.errors import InputError
from corpusmill.registry import register
from corpusmill.schema import Record
from crawlers.importers.base import BadRow, RowReader
from crawlers.importers.jsonl import json_lines


class ChatReader(RowReader):
    """JSONL whose rows are validated and converted by :mod:`corpusmill.chatformats`."""

    chat_format: ClassVar[str] = ""

    def rows(self) -> Iterator[tuple[str, dict[str, Any] | BadRow]]:
        return json_lines(self)

    def required_columns(self) -> list[str]:
        return [c for c in (self.mapping.label, self.mapping.id, self.mapping.group, *self.mapping.meta) if c]

    def to_record(self, row: dict[str, Any], where: str) -> Record:
        convert: Callable[..., Any] = READERS[self.chat_format]
        try:
            messages, meta = convert(row)
        except ChatFormatError as exc:
            error = InputError(where, f"not a valid {self.chat_format} row: {exc}")
            error.reason_label = exc.reason  # type: ignore[attr-defined]
            raise error from None
        return self.mapping.to_record(row, self.dataset, self.uri or str(self.path), where, messages, meta)


@register("openai")
class OpenAIChatReader(ChatReader):
    """OpenAI chat fine-tuning JSONL (``messages`` with roles) as chat records."""

    chat_format = "openai"


@register("sharegpt")
class ShareGPTReader(ChatReader):
    """ShareGPT conversations (``from`` / ``value`` turns) as chat records."""

    chat_format = "sharegpt"


@register("alpaca")
class AlpacaReader(ChatReader):
    """Alpaca instruction / input / output rows as chat records."""

    chat_format = "alpaca"


@register("prompt-completion")
class PromptCompletionReader(ChatReader):
    """TRL's prompt/completion JSONL (two strings, or two lists of messages) as chat records."""

    chat_format = "prompt-completion"
