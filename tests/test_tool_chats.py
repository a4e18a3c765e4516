"""Tool-using chats and TRL's formats, in and out (issue 19): OpenAI ``tool_calls`` / ``tool``
turns / ``weight`` / ``tools``, LLaMA-Factory's ShareGPT ``function_call`` / ``observation``, and
prompt/completion rows in both of TRL's forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpusmill.chatformats import from_sharegpt, to_openai, to_prompt_completion, to_sharegpt
from corpusmill.errors import InputError
from corpusmill.schema import Record
from crawlers.importers import ImportSource, detect_format

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SHAREGPT_ROW = {  # LLaMA-Factory's documented ShareGPT shape for tool use
    "conversations": [
        {"from": "human", "value": "What is the weather in Paris?"},
        {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": '{"temperature": 18, "sky": "cloudy"}'},
        {"from": "gpt", "value": "It is 18 degrees and cloudy in Paris."},
    ],
    "system": "You are a weather assistant.",
    "tools": json.dumps([WEATHER_TOOL]),
}


def read(path: Path, **options) -> list[Record]:
    return list(ImportSource(dataset="t", path=path, **options).run())


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_sharegpt_function_calls_and_observations_become_tool_turns_and_export_as_they_came(tmp_path):
    [record] = read(write_jsonl(tmp_path / "tools.jsonl", [SHAREGPT_ROW]))
    assert detect_format(tmp_path / "tools.jsonl") == "sharegpt"
    messages = [m.model_dump() for m in record.messages]
    assert messages == [
        {"role": "system", "content": "You are a weather assistant."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"temperature": 18, "sky": "cloudy"}', "tool_call_id": "call_0"},
        {"role": "assistant", "content": "It is 18 degrees and cloudy in Paris."},
    ]
    assert record.meta["tools"] == [WEATHER_TOOL]
    exported = to_sharegpt(messages, record.meta)
    assert exported["conversations"] == [
        {"from": "system", "value": SHAREGPT_ROW["system"]},
        *SHAREGPT_ROW["conversations"],
    ]
    assert json.loads(exported["tools"]) == [WEATHER_TOOL]
    assert from_sharegpt(exported) == from_sharegpt(SHAREGPT_ROW)
    openai = to_openai(messages, record.meta)  # and on to OpenAI's form: the call has no content key
    assert openai["messages"][2] == {"role": "assistant", "tool_calls": messages[2]["tool_calls"]}
    assert openai["tools"] == [WEATHER_TOOL]


def test_a_parallel_function_call_and_text_beside_a_call(tmp_path):
    row = json.loads(json.dumps(SHAREGPT_ROW))
    row["conversations"][1]["value"] = json.dumps(
        [
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "get_weather", "arguments": {"city": "Rome"}},
        ]
    )
    [record] = read(write_jsonl(tmp_path / "parallel.jsonl", [row]))
    calls = record.messages[2].tool_calls
    assert [(c.id, c.function.arguments) for c in calls] == [
        ("call_0", '{"city": "Paris"}'),
        ("call_1", '{"city": "Rome"}'),
    ]
    assert json.loads(
        to_sharegpt([m.model_dump() for m in record.messages], record.meta)["conversations"][2]["value"]
    ) == [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Rome"}},
    ]
    talking = [m.model_dump() for m in record.messages]
    talking[2]["content"] = "Let me look."
    from corpusmill.chatformats import ChatFormatError

    with pytest.raises(ChatFormatError) as refused:
        to_sharegpt(talking, {})
    assert refused.value.reason == "text_with_tool_call"


BAD_OPENAI = [
    (
        [{"role": "user", "content": "hi", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]}],
        "bad_tool_calls",
        "messages[0].tool_calls is only allowed on assistant messages",
    ),
    (
        [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_9", "content": "{}"}],
        "bad_tool_message",
        "messages[1].tool_call_id 'call_9' answers no earlier tool call",
    ),
    (
        [{"role": "assistant", "content": "hi", "functions": []}],
        "bad_message",
        "messages[0] has unknown key 'functions' (allowed: role, content, name, tool_calls, tool_call_id, weight)",
    ),
    (
        [{"role": "user", "content": "hi", "weight": 1}, {"role": "assistant", "content": "yo"}],
        "bad_weight",
        "messages[0].weight is only allowed on assistant messages",
    ),
    (
        [
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}],
            }
        ],
        "bad_tool_calls",
        "messages[0].tool_calls[0].function.arguments must be a JSON string",
    ),
    (
        [{"role": "user", "content": None}, {"role": "assistant", "content": "yo"}],
        "bad_content",
        "messages[0].content must be a string (it may be left out only beside tool_calls)",
    ),
]


@pytest.mark.parametrize(("messages", "reason", "expected"), BAD_OPENAI)
def test_an_openai_chat_that_breaks_the_rules_is_one_line_naming_the_line_and_key(tmp_path, messages, reason, expected):
    good = {"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}]}
    path = write_jsonl(tmp_path / "chats.jsonl", [good, {"messages": messages}])
    with pytest.raises(InputError) as error:
        read(path, format="openai")
    assert str(error.value) == f"{path}:2: not a valid openai row: {expected}"
    reader = ImportSource(dataset="t", path=path, format="openai", on_error="skip")
    assert len(list(reader.run())) == 1 and reader.stats.dropped == {reason: 1}


def test_prompt_completion_rows_in_both_forms_become_chats_and_export_conversationally(tmp_path):
    rows = [
        {"prompt": "Where is my parcel?", "completion": "Open Deliveries in the app."},
        {
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sunday delivery?"}],
            "completion": [{"role": "assistant", "content": "Only in large cities."}],
        },
        {"prompt": "Mixed forms", "completion": [{"role": "assistant", "content": "no"}]},
        {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "user", "content": "no answer"}]},
    ]
    path = write_jsonl(tmp_path / "pc.jsonl", rows)
    assert detect_format(path) == "prompt-completion"
    reader = ImportSource(dataset="t", path=path, on_error="skip")
    records = list(reader.run())
    assert reader.stats.dropped == {"bad_prompt": 1, "no_assistant": 1}
    assert [[m.model_dump() for m in r.messages] for r in records] == [
        [{"role": "user", "content": rows[0]["prompt"]}, {"role": "assistant", "content": rows[0]["completion"]}],
        rows[1]["prompt"] + rows[1]["completion"],
    ]
    exported = to_prompt_completion([m.model_dump() for m in records[1].messages], records[1].meta)
    assert exported == {"prompt": rows[1]["prompt"], "completion": rows[1]["completion"]}
    mapped = read(path, prompt="prompt", response="completion", on_error="skip")  # named columns: plain JSONL
    assert [[m.content for m in r.messages] for r in mapped] == [[rows[0]["prompt"], rows[0]["completion"]]]


def test_a_tool_call_turn_survives_cleaning_and_its_tokens_count_with_the_tools(tmp_path):
    """A call-only assistant turn has empty content: cleaning must not reject it as emptied; token
    counts render the chat with its tools, as a trainer's chat template does."""
    from transformers import AutoConfig, AutoTokenizer

    from cleaning.normalize import NormalizeText
    from corpusmill.models import packaged_smollm2
    from corpusmill.tokens import count_tokens

    [record] = read(write_jsonl(tmp_path / "tools.jsonl", [SHAREGPT_ROW]))
    record.split = "train"
    cleaned = NormalizeText().transform(record)
    assert cleaned.messages[2].tool_calls == record.messages[2].tool_calls and cleaned.messages[2].content == ""

    gguf = packaged_smollm2()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.chat_template = (  # a template that, like tool-aware ones, lists the tools and the calls
        "{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n"
        "{{ m.content }}{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}<|im_end|>\n{% endfor %}"
    )
    tokenizer.save_pretrained(tmp_path / "tool-tokenizer")
    AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(tmp_path / "tool-tokenizer")
    report = count_tokens([cleaned], str(tmp_path / "tool-tokenizer"), None, ["train"])
    turns = [m.model_dump() for m in cleaned.messages]
    with_tools = len(tokenizer.apply_chat_template(turns, tools=record.meta["tools"], tokenize=True)["input_ids"])
    assert list(report.splits["train"].counts) == [with_tools]
    assert with_tools > len(tokenizer.apply_chat_template(turns, tokenize=True)["input_ids"])
