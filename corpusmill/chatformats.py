"""Chat fine-tuning file formats, both ways, validated by the same rules in and out.

* OpenAI chat fine-tuning JSONL: ``{"messages": [...], "tools"?, "parallel_tool_calls"?}`` —
  roles system/user/assistant/tool; string ``content``, which an assistant message calling tools
  may leave out; ``tool_calls`` (``{"id", "type": "function", "function": {"name", "arguments"}}``,
  ``arguments`` a JSON string) only on assistant messages; a ``tool`` message answers an earlier
  call by its ``tool_call_id`` (if it names one); ``weight`` 0 or 1 only on assistant messages;
  ``name`` on any; at least one assistant message. ``tools`` (the functions' schemas) and ``parallel_tool_calls``
  travel in the record's ``meta``.
* ShareGPT, LLaMA-Factory's variant included: ``{"conversations": [{"from", "value"}],
  "system"?, "tools"?}`` — an optional leading ``system``, then turns alternating between the
  user's side (``human``; ``observation``, a tool's result) and the assistant's (``gpt``;
  ``function_call``, a JSON ``{"name", "arguments"}`` or a list of them), from ``human`` to an
  assistant turn; ``tools`` a JSON string of the functions' schemas.
* Alpaca: ``{"instruction", "input", "output", "system"?, "history"?}`` — ``history`` is a list of
  ``[instruction, response]`` pairs before this one. ``input`` is appended to the instruction
  after a blank line, so an export writes it back as part of ``instruction``.
* Prompt/completion, TRL's format: ``{"prompt", "completion"}`` — two strings (the user's prompt,
  the assistant's answer) or two lists of messages (conversational: the completion's messages
  follow the prompt's). Exports write the conversational form: every message but the last in
  ``prompt``, the last (an assistant's) in ``completion``.
* Messages, TRL's conversational language-modelling format: ``{"messages": [...], "tools"?}``
  with every chat as it is (export only; the OpenAI reader reads it back).

Importers read with ``from_*``; the release writer's exports write with ``to_*``. Messages are
dicts of the record schema's :class:`~corpusmill.schema.Message` fields (``role``, ``content``
and, where set, ``name``, ``tool_calls``, ``tool_call_id``, ``weight``).
"""

from __future__ import annotations

import json
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant", "observation": "tool"}
SHAREGPT_USER_SIDE = ("human", "observation")
SHAREGPT_ASSISTANT_SIDE = ("gpt", "function_call")
MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "weight")
TOOL_META_KEYS = ("tools", "parallel_tool_calls")
"""What a chat row says beside its messages, kept in the record's ``meta`` under these names."""


class ChatFormatError(ValueError):
    """A row that breaks a format's rules; ``reason`` is a short label for stats."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _require(condition: bool, reason: str, message: str) -> None:
    if not condition:
        raise ChatFormatError(reason, message)


# --- OpenAI --------------------------------------------------------------------------------


def from_openai(row: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    messages = row.get("messages")
    _require(isinstance(messages, list) and bool(messages), "bad_messages", "'messages' must be a non-empty list")
    out = _openai_messages(messages, "messages")  # type: ignore[arg-type]
    _require(any(m["role"] == "assistant" for m in out), "no_assistant", "needs at least one assistant message")
    return out, _tool_meta(row)


def _openai_messages(messages: list[Any], where: str, calls: set[str] | None = None) -> list[dict[str, Any]]:
    """OpenAI messages checked one by one; ``calls`` collects the tool call ids made so far, so a
    tool message can be checked to answer one of them."""
    calls = set() if calls is None else calls
    out = []
    for index, message in enumerate(messages):
        at = f"{where}[{index}]"
        _require(isinstance(message, dict), "bad_message", f"{at} must be an object")
        _no_other_keys(message, MESSAGE_KEYS, "bad_message", at)
        role, content = message.get("role"), message.get("content")
        _require(role in ROLES, "bad_role", f"{at}.role must be one of {', '.join(ROLES)}, got {role!r}")
        clean: dict[str, Any] = {"role": role}
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            _require(role == "assistant", "bad_tool_calls", f"{at}.tool_calls is only allowed on assistant messages")
            clean["tool_calls"] = _tool_calls(tool_calls, f"{at}.tool_calls")
            calls.update(call["id"] for call in clean["tool_calls"])
        _require(
            isinstance(content, str) or (content is None and tool_calls is not None),
            "bad_content",
            f"{at}.content must be a string (it may be left out only beside tool_calls)",
        )
        clean["content"] = content or ""
        name = message.get("name")
        if name is not None:
            _require(isinstance(name, str) and bool(name), "bad_message", f"{at}.name must be a non-empty string")
            clean["name"] = name
        call_id = message.get("tool_call_id")
        if call_id is not None:  # a tool message without one: a tool's output the chat ties to no call
            _require(role == "tool", "bad_tool_message", f"{at}.tool_call_id is only allowed on tool messages")
            _require(
                call_id in calls, "bad_tool_message", f"{at}.tool_call_id {call_id!r} answers no earlier tool call"
            )
            clean["tool_call_id"] = call_id
        weight = message.get("weight")
        if weight is not None:
            _require(role == "assistant", "bad_weight", f"{at}.weight is only allowed on assistant messages")
            _require(weight in (0, 1) and not isinstance(weight, bool), "bad_weight", f"{at}.weight must be 0 or 1")
            clean["weight"] = weight
        out.append(clean)
    return out


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    _require(isinstance(value, list) and bool(value), "bad_tool_calls", f"{where} must be a non-empty list")
    calls = []
    for index, call in enumerate(value):
        at = f"{where}[{index}]"
        _require(isinstance(call, dict), "bad_tool_calls", f"{at} must be an object")
        _no_other_keys(call, ("id", "type", "function"), "bad_tool_calls", at)
        _require(
            isinstance(call.get("id"), str) and bool(call["id"]),
            "bad_tool_calls",
            f"{at}.id must be a non-empty string",
        )
        _require(call.get("type", "function") == "function", "bad_tool_calls", f"{at}.type must be 'function'")
        function = call.get("function")
        _require(isinstance(function, dict), "bad_tool_calls", f"{at}.function must be an object")
        _no_other_keys(function, ("name", "arguments"), "bad_tool_calls", f"{at}.function")
        name, arguments = function.get("name"), function.get("arguments")
        _require(
            isinstance(name, str) and bool(name), "bad_tool_calls", f"{at}.function.name must be a non-empty string"
        )
        _require(isinstance(arguments, str), "bad_tool_calls", f"{at}.function.arguments must be a JSON string")
        calls.append({"id": call["id"], "type": "function", "function": {"name": name, "arguments": arguments}})
    return calls


def _no_other_keys(value: dict[str, Any], allowed: tuple[str, ...], reason: str, where: str) -> None:
    extra = sorted(set(value) - set(allowed))
    if extra:
        raise ChatFormatError(reason, f"{where} has unknown key {extra[0]!r} (allowed: {', '.join(allowed)})")


def _tool_meta(row: dict[str, Any]) -> dict[str, Any]:
    meta = {}
    tools = row.get("tools")
    if tools is not None:
        _require(
            isinstance(tools, list) and all(isinstance(tool, dict) for tool in tools),
            "bad_tools",
            "'tools' must be a list of objects (the functions' schemas)",
        )
        meta["tools"] = tools
    parallel = row.get("parallel_tool_calls")
    if parallel is not None:
        _require(isinstance(parallel, bool), "bad_tools", "'parallel_tool_calls' must be true or false")
        meta["parallel_tool_calls"] = parallel
    return meta


def _openai_row_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as OpenAI writes them: an assistant message that only calls tools has no content.
    (TRL's formats keep the empty content: chat templates such as SmolLM2's read every turn's.)"""
    return [
        {key: value for key, value in m.items() if key != "content"} if m.get("tool_calls") and not m["content"] else m
        for m in messages
    ]


def to_openai(messages: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"messages": _openai_row_messages(messages)}
    row.update({key: meta[key] for key in TOOL_META_KEYS if key in meta})
    from_openai(row)
    return row


# --- ShareGPT ------------------------------------------------------------------------------


def from_sharegpt(row: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    turns = row.get("conversations")
    _require(isinstance(turns, list) and bool(turns), "bad_conversations", "'conversations' must be a non-empty list")
    out: list[dict[str, Any]] = []
    system = row.get("system")
    if system:
        _require(isinstance(system, str), "bad_system", "'system' must be a string")
        out.append({"role": "system", "content": system})
    last_call: str | None = None
    speakers = ", ".join([*SHAREGPT_ROLES, "function_call"])
    for index, turn in enumerate(turns):  # type: ignore[arg-type]
        where = f"conversations[{index}]"
        _require(isinstance(turn, dict), "bad_turn", f"{where} must be an object")
        speaker, value = turn.get("from"), turn.get("value")
        _require(
            speaker in SHAREGPT_ROLES or speaker == "function_call",
            "bad_role",
            f"{where}.from must be one of {speakers}, got {speaker!r}",
        )
        _require(isinstance(value, str), "bad_content", f"{where}.value must be a string")
        if speaker == "function_call":
            calls = _sharegpt_calls(value, sum(len(m.get("tool_calls", ())) for m in out), where)
            last_call = calls[0]["id"]
            out.append({"role": "assistant", "content": "", "tool_calls": calls})
        elif speaker == "observation":
            _require(
                last_call is not None, "bad_tool_message", f"{where}: an observation needs a function_call before it"
            )
            out.append({"role": "tool", "content": value, "tool_call_id": last_call})
        else:
            out.append({"role": SHAREGPT_ROLES[speaker], "content": value})
    _check_alternating(out, "conversations")
    tools = row.get("tools")
    meta = {}
    if tools:
        try:
            meta = _tool_meta({"tools": json.loads(tools) if isinstance(tools, str) else tools})
        except json.JSONDecodeError:
            raise ChatFormatError("bad_tools", "'tools' must be a JSON list of the functions' schemas") from None
    return out, meta


def _sharegpt_calls(value: str, made: int, where: str) -> list[dict[str, Any]]:
    """A ``function_call`` turn's JSON (one call or a list) as OpenAI tool calls; ShareGPT gives
    calls no ids, so each gets ``call_<n>``, numbered through the conversation after the ``made``
    before it: the same on every import, whether the system prompt is a turn or a key."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise ChatFormatError("bad_tool_calls", f"{where}.value must be a JSON function call") from None
    calls = []
    for number, call in enumerate(parsed if isinstance(parsed, list) else [parsed]):
        _require(
            isinstance(call, dict) and isinstance(call.get("name"), str) and bool(call["name"]),
            "bad_tool_calls",
            f'{where}.value must be {{"name", "arguments"}} (or a list of them)',
        )
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        calls.append(
            {
                "id": f"call_{made + number}",
                "type": "function",
                "function": {"name": call["name"], "arguments": arguments},
            }
        )
    _require(bool(calls), "bad_tool_calls", f"{where}.value holds no function call")
    return calls


def _side(message: dict[str, Any]) -> str:
    return "user" if message["role"] in ("user", "tool") else message["role"]


def _check_alternating(messages: list[dict[str, Any]], where: str) -> None:
    """system?, then the user's side (a user or tool turn) and the assistant's alternating, from
    a user turn to an assistant turn."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    _require(bool(body), "no_assistant", f"{where} needs a user turn and an assistant turn")
    _require(body[0]["role"] == "user", "not_alternating", f"{where}: turn 1 should be user, got {body[0]['role']}")
    for index, message in enumerate(body):
        expected = "user" if index % 2 == 0 else "assistant"
        _require(
            _side(message) == expected,
            "not_alternating",
            f"{where}: turn {index + 1} should be {expected}, got {message['role']}",
        )
    _require(body[-1]["role"] == "assistant", "no_assistant", f"{where} must end with an assistant turn")


def to_sharegpt(messages: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    _check_alternating(messages, "messages")
    conversations = []
    for message in messages:
        if message.get("tool_calls"):
            _require(
                not message["content"],
                "text_with_tool_call",
                "an assistant turn with both text and tool calls has no ShareGPT form",
            )
            calls = [_sharegpt_call(call["function"]) for call in message["tool_calls"]]
            value = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
            conversations.append({"from": "function_call", "value": value})
        else:
            names = {value: key for key, value in SHAREGPT_ROLES.items()}
            conversations.append({"from": names[message["role"]], "value": message["content"]})
    row: dict[str, Any] = {"conversations": conversations}
    if meta.get("tools"):
        row["tools"] = json.dumps(meta["tools"], ensure_ascii=False)
    return row


def _sharegpt_call(function: dict[str, str]) -> dict[str, Any]:
    try:
        arguments: Any = json.loads(function["arguments"])
    except json.JSONDecodeError:
        arguments = function["arguments"]
    return {"name": function["name"], "arguments": arguments}


# --- Alpaca --------------------------------------------------------------------------------


def from_alpaca(row: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    instruction, output = row.get("instruction"), row.get("output")
    _require(
        isinstance(instruction, str) and bool(instruction.strip()),
        "bad_instruction",
        "'instruction' must be a non-empty string",
    )
    _require(isinstance(output, str), "bad_output", "'output' must be a string")
    extra_input = row.get("input") or ""
    _require(isinstance(extra_input, str), "bad_input", "'input' must be a string")
    messages: list[dict[str, Any]] = []
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


def to_alpaca(messages: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    _require(
        not any(m["role"] == "tool" or m.get("tool_calls") for m in messages),
        "tool_turns",
        "alpaca has no form for tool calls and their results",
    )
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


# --- TRL's prompt/completion and messages ----------------------------------------------------


def from_prompt_completion(row: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, str) and isinstance(completion, str):
        _require(bool(prompt.strip()), "bad_prompt", "'prompt' must be a non-empty string")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}], {}
    _require(
        isinstance(prompt, list) and isinstance(completion, list) and bool(prompt) and bool(completion),
        "bad_prompt",
        "'prompt' and 'completion' must both be strings or both non-empty lists of messages",
    )
    calls: set[str] = set()
    messages = _openai_messages(prompt, "prompt", calls) + _openai_messages(completion, "completion", calls)  # type: ignore[arg-type]
    _require(
        any(m["role"] == "assistant" for m in messages[len(prompt) :]),  # type: ignore[arg-type]
        "no_assistant",
        "'completion' needs an assistant message",
    )
    return messages, _tool_meta(row)


def to_prompt_completion(messages: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    _require(
        len(messages) >= 2 and messages[-1]["role"] == "assistant",
        "no_assistant",
        "a prompt/completion row needs a prompt and a final assistant message",
    )
    row: dict[str, Any] = {"prompt": messages[:-1], "completion": messages[-1:]}
    row.update({key: meta[key] for key in ("tools",) if key in meta})
    from_prompt_completion(row)
    return row


def to_messages(messages: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"messages": messages}
    row.update({key: meta[key] for key in ("tools",) if key in meta})
    return row


READERS = {
    "openai": from_openai,
    "sharegpt": from_sharegpt,
    "alpaca": from_alpaca,
    "prompt-completion": from_prompt_completion,
}
WRITERS = {
    "openai": to_openai,
    "sharegpt": to_sharegpt,
    "alpaca": to_alpaca,
    "prompt-completion": to_prompt_completion,
    "messages": to_messages,
}
