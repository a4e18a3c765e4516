"""Chat fine-tuning file formats, both ways, validated by the same rules in and out.

* OpenAI chat fine-tuning JSONL: ``{"messages": [{"role", "content", "weight"?}]}`` — roles
  system/user/assistant/tool, string content, at least one assistant message, ``weight`` 0 or 1
  and only on assistant messages.
* ShareGPT: ``{"conversations": [{"from", "value"}]}`` — an optional leading ``system``, then
  ``human`` and ``gpt`` turns alternating, starting with ``human``.
* Alpaca: ``{"instruction", "input", "output", "system"?, "history"?}`` — ``history`` is a list of
  ``[instruction, response]`` pairs before this one. ``input`` is appended to the instruction
  after a blank line, so an export writes it back as part of ``instruction``.

Importers read with ``from_*``; the release writer's exports write with ``to_*``.
"""

from __future__ import annotations

from typing import Any

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}
FORMATS = ("openai", "sharegpt", "alpaca")


class ChatFormatError(ValueError):
    """A row that breaks a format's rules; ``reason`` is a short label for stats."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _require(condition: bool, reason: str, message: str) -> None:
    if not condition:
        raise ChatFormatError(reason, message)


def from_openai(row: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    messages = row.get("messages")
    _require(isinstance(messages, list) and bool(messages), "bad_messages", "'messages' must be a non-empty list")
    out, weights = [], []
    for index, message in enumerate(messages):  # type: ignore[arg-type]
        where = f"messages[{index}]"
        _require(isinstance(message, dict), "bad_message", f"{where} must be an object")
        role, content = message.get("role"), message.get("content")
        _require(role in ROLES, "bad_role", f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}")
        _require(isinstance(content, str), "bad_content", f"{where}.content must be a string")
        weight = message.get("weight")
        if weight is not None:
            _require(role == "assistant", "bad_weight", f"{where}.weight is only allowed on assistant messages")
            _require(weight in (0, 1) and not isinstance(weight, bool), "bad_weight", f"{where}.weight must be 0 or 1")
        extra = sorted(set(message) - {"role", "content", "weight", "name"})
        _require(not extra, "bad_message", f"{where} has unknown key {extra[:1]}")
        out.append({"role": role, "content": content})
        weights.append(weight)
    _require(any(m["role"] == "assistant" for m in out), "no_assistant", "needs at least one assistant message")
    meta = {"weights": weights} if any(w is not None for w in weights) else {}
    return out, meta


def to_openai(messages: list[dict[str, str]], meta: dict[str, Any]) -> dict[str, Any]:
    weights = meta.get("weights") or [None] * len(messages)
    row = {
        "messages": [
            {**message, "weight": weight} if weight is not None else dict(message)
            for message, weight in zip(messages, weights, strict=False)
        ]
    }
    from_openai(row)
    return row


def from_sharegpt(row: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    turns = row.get("conversations")
    _require(isinstance(turns, list) and bool(turns), "bad_conversations", "'conversations' must be a non-empty list")
    out = []
    for index, turn in enumerate(turns):  # type: ignore[arg-type]
        where = f"conversations[{index}]"
        _require(isinstance(turn, dict), "bad_turn", f"{where} must be an object")
        speaker, value = turn.get("from"), turn.get("value")
        _require(speaker in SHAREGPT_ROLES, "bad_role", f"{where}.from must be system, human or gpt, got {speaker!r}")
        _require(isinstance(value, str), "bad_content", f"{where}.value must be a string")
        out.append({"role": SHAREGPT_ROLES[speaker], "content": value})
    _check_alternating(out, "conversations")
    return out, {}


def _check_alternating(messages: list[dict[str, str]], where: str) -> None:
    """system?, then user/assistant alternating from user, ending on an assistant turn."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    _require(bool(body), "no_assistant", f"{where} needs a user turn and an assistant turn")
    for index, message in enumerate(body):
        expected = "user" if index % 2 == 0 else "assistant"
        _require(
            message["role"] == expected,
            "not_alternating",
            f"{where}: turn {index + 1} should be {expected}, got {message['role']}",
        )
    _require(body[-1]["role"] == "assistant", "no_assistant", f"{where} must end with an assistant turn")


def to_sharegpt(messages: list[dict[str, str]], meta: dict[str, Any]) -> dict[str, Any]:
    _check_alternating(messages, "messages")
    names = {value: key for key, value in SHAREGPT_ROLES.items()}
    return {"conversations": [{"from": names[m["role"]], "value": m["content"]} for m in messages]}


def from_alpaca(row: dict[str, Any]) -> tuple[list[dict[str, str]], dict[str, Any]]:
    instruction, output = row.get("instruction"), row.get("output")
    _require(
        isinstance(instruction, str) and bool(instruction.strip()),
        "bad_instruction",
        "'instruction' must be a non-empty string",
    )
    _require(isinstance(output, str), "bad_output", "'output' must be a string")
    extra_input = row.get("input") or ""
    _require(isinstance(extra_input, str), "bad_input", "'input' must be a string")
    messages: list[dict[str, str]] = []
    system = row.get("system")
    if system:
        _require(isinstance(system, str), "bad_system", "'system' must be a string")
        messages.append({"role": "system", "content": system})
    history = row.get("history") or []
    _require(isinstance(history, list), "bad_history", "'history' must be a list of [instruction, response] pairs")
    for index, pair in enumerate(history):
        _require(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair),
            "bad_history",
            f"history[{index}] must be [instruction, response]",
        )
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    prompt = f"{instruction}\n\n{extra_input}" if extra_input else instruction
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return messages, {}


def to_alpaca(messages: list[dict[str, str]], meta: dict[str, Any]) -> dict[str, Any]:
    _check_alternating(messages, "messages")
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    body = messages[1:] if system is not None else messages
    pairs = [[body[i]["content"], body[i + 1]["content"]] for i in range(0, len(body), 2)]
    row: dict[str, Any] = {"instruction": pairs[-1][0], "input": "", "output": pairs[-1][1]}
    if system is not None:
        row["system"] = system
    if len(pairs) > 1:
        row["history"] = pairs[:-1]
    from_alpaca(row)
    return row


READERS = {"openai": from_openai, "sharegpt": from_sharegpt, "alpaca": from_alpaca}
WRITERS = {"openai": to_openai, "sharegpt": to_sharegpt, "alpaca": to_alpaca}
