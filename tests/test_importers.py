"""Every import format on real data: counts, round trips through release exports, FILE:LINE errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from corpusmill.cli import app
from corpusmill.config import load_config
from corpusmill.errors import InputError
from corpusmill.executor import LocalExecutor
from crawlers.extract import extract_from_bytes
from crawlers.importers import ImportSource, detect_format

runner = CliRunner()


def read(path: Path, **options) -> list:
    reader = ImportSource(dataset="t", path=path, **options)
    return list(reader.run())


def test_banking77_row_counts_and_labels(shared_data):
    train = read(shared_data / "banking77" / "train.csv", label="category")
    test = read(shared_data / "banking77" / "test.csv", label="category")
    assert len(train) == 10_003 and len(test) == 3_080  # wc -l says 10,017 and 3,085: quoted newlines
    categories = set(json.loads((shared_data / "banking77" / "categories.json").read_text()))
    assert {r.label for r in train} == categories == {r.label for r in test}
    assert any("\n" in r.text for r in train)


CHATS = [
    {
        "messages": [
            {"role": "system", "content": "You are Parcelly's assistant."},
            {"role": "user", "content": "Where is my parcel?"},
            {"role": "assistant", "content": "Open Deliveries in the app and pick the parcel."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Can I change the address?"},
            {"role": "assistant", "content": "Yes, until it is loaded onto a van.", "weight": 1},
            {"role": "user", "content": "And after that?"},
            {"role": "assistant", "content": "Then it can only go to a locker.", "weight": 0},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Look up PX1"},
            {"role": "tool", "content": '{"status": "held"}'},
            {"role": "assistant", "content": "It is held at the depot."},
        ]
    },
    TOOL_CHAT := {
        "messages": [
            {"role": "system", "content": "You are Parcelly's assistant.", "name": "parcelly"},
            {"role": "user", "content": "Where is parcel PX2?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "track", "arguments": '{"parcel": "PX2"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "out for delivery"}'},
            {"role": "assistant", "content": "It is out for delivery today.", "weight": 1},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "track",
                    "description": "Where a parcel is",
                    "parameters": {"type": "object", "properties": {"parcel": {"type": "string"}}},
                },
            }
        ],
    },
]
EXPORTS = ["openai", "sharegpt", "alpaca", "prompt-completion", "messages"]


@pytest.fixture(scope="module")
def release(shared_data, tmp_path_factory):
    """A release of 300 Banking77 questions plus chats, with every fine-tuning export."""
    directory = tmp_path_factory.mktemp("roundtrip")
    rows = list(csv.DictReader((shared_data / "banking77" / "train.csv").open(newline="", encoding="utf-8")))[::33]
    with (directory / "questions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["text", "category"])
        writer.writeheader()
        writer.writerows(rows)
    (directory / "chats.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CHATS * 10))
    from conftest import write_config

    config = write_config(
        directory,
        sources=[
            {"type": "import", "path": "questions.csv", "label": "category", "dataset": "questions"},
            {"type": "import", "path": "chats.jsonl", "dataset": "chats"},
        ],
        split={"ratios": {"train": 0.5, "validation": 0.25, "test": 0.25}},
        release={"name": "rt", "version": "1", "exports": EXPORTS},
    )
    return LocalExecutor(load_config(config), workers=1).build().release_dir


def released(release: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (release / "jsonl" / f"{split}.jsonl").read_text().splitlines()]


def test_round_trip_through_parquet_jsonl_and_hf_datasets(release, tmp_path):
    import datasets

    original = [{k: v for k, v in r.items() if k != "source"} for r in released(release, "train")]
    assert any(r["messages"] for r in original) and any(r["text"] for r in original)
    saved = tmp_path / "saved"
    datasets.load_dataset(str(release))["train"].save_to_disk(str(saved))
    assert detect_format(saved) == "hf"
    for path in (release / "data" / "train-00000-of-00001.parquet", release / "jsonl" / "train.jsonl", saved):
        again = read(path)
        assert [r.model_dump(mode="json", exclude={"source"}) for r in again] == original, path
    mapped = read(release / "data" / "train-00000-of-00001.parquet", text="text", label="label", on_error="skip")
    assert sorted((r.text, r.label) for r in mapped) == sorted((r["text"], r["label"]) for r in original if r["text"])


EXPRESSIBLE = {  # which of CHATS each export can say (ShareGPT: turns alternate; Alpaca: no tools)
    "openai": [0, 1, 2, 3],
    "sharegpt": [0, 1, 3],
    "alpaca": [0, 1],
    "prompt-completion": [0, 1, 2, 3],
    "messages": [0, 1, 2, 3],
}


@pytest.mark.parametrize("fmt", EXPORTS)
def test_round_trip_through_chat_exports(release, fmt):
    manifest = json.loads((release / "manifest.json").read_text())
    chats = [r for r in released(release, "train") if r["messages"]]
    export = release / "exports" / fmt / "train.jsonl"
    assert detect_format(export) == ("openai" if fmt == "messages" else fmt)
    entry = manifest["exports"][fmt]["train"]
    imported = read(export)
    shapes = [[m.get("content", "") for m in chat["messages"]] for chat in CHATS]
    expressible = [c for c in chats if shapes.index([m["content"] for m in c["messages"]]) in EXPRESSIBLE[fmt]]
    assert entry["written"] == len(imported) == len(expressible)
    assert [_comparable([m.model_dump() for m in r.messages], fmt) for r in imported] == [
        _comparable(c["messages"], fmt) for c in expressible
    ]
    assert [r.meta.get("tools") for r in imported] == [c["meta"].get("tools") for c in expressible]
    if fmt == "openai":
        assert [None, 1, None, 0] in [[m.weight for m in r.messages] for r in imported]
        rows = [json.loads(line) for line in export.open()]
        assert TOOL_CHAT in rows  # tool calls, tool_call_id, name, weight and tools exactly as they came in
    skipped = sum(entry["skipped"].values()) - entry["skipped"].get("not_chat", 0)
    assert skipped == len(chats) - len(expressible) and (skipped > 0) == (len(EXPRESSIBLE[fmt]) < len(CHATS))
    assert entry["skipped"]["not_chat"] == sum(1 for r in released(release, "train") if r["text"])


def _comparable(messages: list[dict], fmt: str) -> list[dict]:
    """ShareGPT and Alpaca keep no speaker names or turn weights; ShareGPT gives tool calls no ids
    (an import names them by turn)."""
    if fmt not in ("sharegpt", "alpaca"):
        return messages
    out = []
    for message in messages:
        message = {k: v for k, v in message.items() if k not in ("tool_call_id", "name", "weight")}
        if "tool_calls" in message:
            message["tool_calls"] = [{k: v for k, v in call.items() if k != "id"} for call in message["tool_calls"]]
        out.append(message)
    return out


@pytest.mark.parametrize("fmt", EXPORTS)
def test_each_export_loads_as_a_config_of_its_own_beside_the_default(release, fmt):
    import datasets

    for split in ("train", "validation", "test"):
        exported = [json.loads(line) for line in (release / "exports" / fmt / f"{split}.jsonl").open()]
        loaded = datasets.load_dataset(str(release), fmt, split=split)
        rows = [_without_nulls(row) for row in loaded.to_list()]
        if fmt != "sharegpt":  # in parquet the tools' schemas are a JSON string (ShareGPT's already are)
            rows = [row | {"tools": json.loads(row["tools"])} if "tools" in row else row for row in rows]
        assert rows == exported and len(exported) > 0
    default = datasets.load_dataset(str(release), split="train")
    assert set(default.column_names) >= {"id", "text", "messages", "label"}
    assert len(default) == len(released(release, "train"))


def test_a_mixed_release_loads_as_a_chat_and_a_text_config_with_only_their_columns(release):
    import datasets

    from corpusmill.release import verify_release

    for split in ("train", "validation", "test"):
        records = released(release, split)
        chat = datasets.load_dataset(str(release), "chat", split=split)
        assert chat.column_names == ["messages"]
        # a release whose chats call tools gives every turn every field (null where unset)
        assert _without_nulls(chat.to_list()) == [{"messages": r["messages"]} for r in records if r["messages"]]
        text = datasets.load_dataset(str(release), "text", split=split)
        assert "messages" not in text.column_names and {"id", "text", "label"} <= set(text.column_names)
        names = text.features["label"].names  # the text config's labels are ClassLabel ids too
        assert [(r["id"], r["text"], names[r["label"]]) for r in text.to_list()] == [
            (r["id"], r["text"], r["label"]) for r in records if r["text"]
        ]
    assert verify_release(release)["configs"]["chat"]["train"]["records"] > 0


@pytest.mark.parametrize("config", ["chat", "prompt-completion"])
def test_the_chat_config_trains_with_trl_sft_trainer_as_it_is(release, tmp_path, config):
    """One optimiser step of TRL's SFTTrainer on the release's chat config (the default config's
    null ``messages`` of text rows would fail it) and on its prompt/completion export (TRL's
    completion-only path, the tools' schemas as the JSON string TRL reads), on the real
    SmolLM2-135M-Instruct."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from training.models import SMOLLM2, resolve_base_model

    checkpoint = resolve_base_model(SMOLLM2)
    train = datasets.load_dataset(str(release), config, split="train")
    arguments = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=64,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
    )
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    trainer = SFTTrainer(
        model=model, args=arguments, train_dataset=train, processing_class=AutoTokenizer.from_pretrained(checkpoint)
    )
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0


def _without_nulls(value):
    """A parquet row as its JSONL line has it: keys the line lacks are null columns in parquet."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def test_the_card_shows_a_text_and_a_chat_example_from_each_split(release):
    card = (release / "README.md").read_text(encoding="utf-8")
    examples = card[card.index("## Examples") :].split("\n## ")[0]
    for split in ("train", "validation", "test"):
        records = released(release, split)
        first_text = next(r for r in records if r["text"])
        first_chat = next(r for r in records if r["messages"])
        assert f"`{split}`, a text record:" in examples and f"`{split}`, a chat record:" in examples
        assert json.dumps(first_text["text"], ensure_ascii=False) in examples
        assert json.dumps(first_chat["messages"][0]["content"], ensure_ascii=False) in examples


def test_round_trip_through_csv_tsv_and_json(release, tmp_path):
    original = [(r["text"], r["label"]) for r in released(release, "validation") if r["text"]]
    for name, delimiter in (("out.csv", ","), ("out.tsv", "\t")):
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter)
        writer.writerow(["text", "label"])
        writer.writerows(original)
        (tmp_path / name).write_text(buffer.getvalue(), encoding="utf-8")
        assert [(r.text, r.label) for r in read(tmp_path / name, label="label")] == original
    (tmp_path / "array.json").write_text(json.dumps([{"text": t, "label": label} for t, label in original], indent=2))
    assert [(r.text, r.label) for r in read(tmp_path / "array.json", label="label")] == original
    nested = {"meta": {"v": 1}, "data": {"items": [{"body": t} for t, _ in original]}}
    (tmp_path / "nested.json").write_text(json.dumps(nested))
    assert [r.text for r in read(tmp_path / "nested.json", text="body", json_path="data.items")] == [
        t for t, _ in original
    ]


def test_warc_html_goes_through_the_crawlers_extraction(shared_data, tmp_path):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    site = shared_data / "sites" / "pygments-docs"
    pages = {
        "http://pygments.test/faq/": site / "faq" / "index.html",
        "http://pygments.test/docs/quickstart/": site / "docs" / "quickstart" / "index.html",
    }
    path = tmp_path / "crawl.warc.gz"
    with path.open("wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for url, file in pages.items():
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(url, "response", payload=io.BytesIO(file.read_bytes()), http_headers=headers)
            )
        headers = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.1")
        writer.write_record(
            writer.create_warc_record(
                "http://pygments.test/logo.png", "response", payload=io.BytesIO(b"\x89PNG"), http_headers=headers
            )
        )
    reader = ImportSource(dataset="warc", path=path)
    records = list(reader.run())
    assert reader.format == "warc"
    assert reader.stats.dropped == {"non_html": 1}
    for url, file in pages.items():
        expected = extract_from_bytes(file.read_bytes(), "utf-8", url)
        text = [r for r in records if r.source.uri == url and r.text is not None]
        assert [t.text for t in text] == [expected["text"]]
    faq = [r for r in records if r.messages and r.source.uri.endswith("/faq/")]
    assert len(faq) == 9


def test_directory_of_text_markdown_and_html(shared_data, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("Plain notes about lockers.\nSecond line.")
    (tmp_path / "notes" / "b.md").write_text("# Returns\n\nHow returns work.")
    (tmp_path / "notes" / "c.html").write_bytes((shared_data / "sites/pygments-docs/faq/index.html").read_bytes())
    (tmp_path / "notes" / "skip.png").write_bytes(b"\x89PNG")
    records = read(tmp_path / "notes")
    assert [r.source.uri for r in records if r.text is not None] == ["a.txt", "b.md", "c.html"]
    assert records[1].meta["title"] == "Returns"
    assert sum(1 for r in records if r.messages) == 9


BAD = [
    ("bad.jsonl", '{"text": "a"}\n\n{"text": "b",}\n', {}, "bad.jsonl:3: invalid JSON"),
    ("bad.jsonl", '{"text": "a"}\n{"body": "b"}\n', {}, "bad.jsonl:2: missing field 'text'"),
    ("bad.csv", 'text,label\n"two\nlines",x\nok,y,z\n', {"label": "label"}, "bad.csv:4: expected 2 fields, got 3"),
    ("bad.csv", "text,label\nok,y\n", {"label": "intent"}, "bad.csv:1: unknown column 'intent' (columns: text, label)"),
    ("bad.json", '[\n  {"text": "a"},\n  {"text": }\n]\n', {}, "bad.json:3: invalid JSON"),
    (
        "chat.jsonl",
        json.dumps(CHATS[0]) + "\n" + json.dumps({"messages": [{"role": "robot", "content": "x"}]}),
        {"format": "openai"},
        "chat.jsonl:2: not a valid openai row: messages[0].role must be one of",
    ),
    (
        "chat.jsonl",
        json.dumps({"messages": [{"role": "user", "content": "x"}]}),
        {"format": "openai"},
        "chat.jsonl:1: not a valid openai row: needs at least one assistant message",
    ),
    (
        "chat.jsonl",
        json.dumps(
            {"messages": [{"role": "user", "content": "x", "weight": 1}, {"role": "assistant", "content": "y"}]}
        ),
        {"format": "openai"},
        "chat.jsonl:1: not a valid openai row: messages[0].weight is only allowed on assistant messages",
    ),
    (
        "sg.jsonl",
        json.dumps({"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}),
        {},
        "sg.jsonl:1: not a valid sharegpt row: conversations: turn 2 should be assistant",
    ),
    (
        "al.jsonl",
        json.dumps({"instruction": "Say hi", "output": "hi"}) + "\n" + json.dumps({"instruction": "x"}),
        {},
        "al.jsonl:2: not a valid alpaca row: 'output' must be a string",
    ),
    ("empty.jsonl", "\n\n", {}, "empty.jsonl: empty input"),
]


@pytest.mark.parametrize(
    ("name", "content", "options", "expected"), BAD, ids=[b[3].split(": ", 1)[1][:30] for b in BAD]
)
def test_malformed_input_names_file_and_line(tmp_path, name, content, options, expected):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read(tmp_path / name, **options)
    assert str(info.value).startswith(str(tmp_path / expected.split(":")[0]))
    assert str(info.value).removeprefix(str(tmp_path) + "/").startswith(expected)


def test_parquet_missing_column_and_hub_id_offline(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["a", "b"]}), tmp_path / "t.parquet")
    with pytest.raises(InputError, match=r"t\.parquet: unknown column 'text' \(columns: body\)"):
        read(tmp_path / "t.parquet")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="PolyAI/banking77: not on disk and the Hugging Face hub is offline"):
        list(ImportSource(dataset="b", path=Path("PolyAI/banking77"), uri="PolyAI/banking77").run())


def test_class_label_ids_of_a_datasets_parquet_and_saved_dataset_import_as_their_names(tmp_path):
    """Banking77 as ``datasets`` stores it: labels are ``ClassLabel`` ids; they import as names,
    ``-1`` (no label) as none, and an id outside the names is a reject that names the row."""
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["card_arrival", "refund"])}
    )
    rows = {"text": ["where is my card", "I want my money back", "hello", "odd"], "label": [0, 1, -1, 0]}
    data = datasets.Dataset.from_dict(rows, features=features)
    data.to_parquet(str(tmp_path / "b.parquet"))
    data.save_to_disk(str(tmp_path / "saved"))
    for path in (tmp_path / "b.parquet", tmp_path / "saved"):
        records = read(path, text="text", label="label")
        assert [(r.text, r.label) for r in records] == [
            ("where is my card", "card_arrival"),
            ("I want my money back", "refund"),
            ("hello", None),
            ("odd", "card_arrival"),
        ], path
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "b.parquet")
    table = table.set_column(1, "label", pa.array([0, 1, 7, 0], pa.int64()))
    pq.write_table(table, tmp_path / "bad.parquet")
    reader = ImportSource(dataset="t", path=tmp_path / "bad.parquet", text="text", label="label", on_error="skip")
    assert [r.text for r in reader.run()] == ["where is my card", "I want my money back", "odd"]
    assert reader.stats.dropped == {"bad_class_label": 1}
    with pytest.raises(
        InputError, match=r"bad\.parquet:row 3: column 'label': class index 7 is not one of its 2 labels"
    ):
        read(tmp_path / "bad.parquet", text="text", label="label")


def test_cli_import_skip_counts_rejects_and_raise_stops_cleanly(tmp_path):
    lines = [json.dumps({"text": f"row {i}", "label": "a"}) for i in range(8)]
    lines[2] = "{broken"
    lines[5] = json.dumps({"label": "b"})
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    failed = runner.invoke(app, ["import", str(tmp_path / "in.jsonl"), "--out", str(out), "--label", "label"])
    assert failed.exit_code == 1 and "in.jsonl:3: invalid JSON" in failed.output
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl*"))
    result = runner.invoke(
        app, ["import", str(tmp_path / "in.jsonl"), "--out", str(out), "--label", "label", "--on-error", "skip"]
    )
    assert result.exit_code == 0, result.output
    assert "8 rows in, 6 records out, rejected: malformed_json: 1, missing_field: 1" in result.output
    rejects = [json.loads(x) for x in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert [(r["reason"], r["where"].rsplit(":", 1)[1]) for r in rejects] == [
        ("malformed_json", "3"),
        ("missing_field", "6"),
    ]
    assert len(out.read_text().splitlines()) == 6


def test_encoding_is_detected(tmp_path):
    (tmp_path / "cp1252.csv").write_bytes("text\nCafé crème on the menu today\n".encode("cp1252"))
    assert [r.text for r in read(tmp_path / "cp1252.csv")] == ["Café crème on the menu today"]
    (tmp_path / "bom.csv").write_bytes("\ufefftext\nwith a byte order mark\n".encode())
    assert [r.text for r in read(tmp_path / "bom.csv")] == ["with a byte order mark"]


PLAIN_CASES = [
    ("text", "label", "group", "id"),
    ('He said "hi"\\ back', "a|b", "g1", "x1"),
    ("line one\nline two", "", "", "x2"),
    ("tab\tand\x01control and é ü 漢字 😀", " c | ", "g1", "x3"),
    ("plain", "a", "", ""),  # an empty id: the row is rejected
]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
@pytest.mark.parametrize(
    "options",
    [{"label": "label"}, {"label": "label", "label_sep": "|", "group": "group"}, {"id": "id", "label": "label"}],
)
def test_plain_rows_become_the_same_lines_as_their_records(tmp_path, fmt, options):
    """The fast lane (rows straight to JSON lines) writes byte for byte what building each
    record and dumping it writes, and rejects the same rows for the same reasons."""
    header, *rows = PLAIN_CASES
    path = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        body = [dict(zip(header, row, strict=True)) for row in rows]
        body += [{"text": "a number label", "label": 7, "group": "g", "id": "x9"}, {"label": "no text"}]
        path.write_text("".join(json.dumps(row) + "\n" for row in body), encoding="utf-8")
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="," if fmt == "csv" else "\t")
        writer.writerows([header, *rows, ("short row",)])
        path.write_text(buffer.getvalue(), encoding="utf-8")

    def reader():
        return ImportSource(dataset="t", path=path, on_error="skip", uri="in", **options)

    slow, fast = reader(), reader()
    expected = [(record.id, record.to_json()) for record in slow.run()]
    assert [line for batch in fast.run_lines() for line in batch] == expected
    assert len(expected) >= 3
    assert fast.stats.dropped == slow.stats.dropped and sum(slow.stats.dropped.values()) >= 1
    assert fast.stats.total == slow.stats.total and fast.stats.kept == slow.stats.kept
