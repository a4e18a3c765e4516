"""Token counts with the tokenizer that will train, in the card and manifest (issue 19), on the
real SmolLM2 tokenizer and its chat template."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from corpusmill.cli import app
from corpusmill.config import ReleaseSpec, load_config
from corpusmill.executor import LocalExecutor

MAX_TOKENS = 20


def write_inputs(directory: Path, shared_data: Path) -> list[dict]:
    with (shared_data / "banking77" / "train.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[::170]
    with (directory / "questions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["text", "category"])
        writer.writeheader()
        writer.writerows(rows)
    with (directory / "faq.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer"])
        for index in range(30):
            writer.writerow(
                [f"Can I change delivery {index}?", "Yes, until the parcel is on a van. " * (index % 4 + 1)]
            )
    unanswered = [{"messages": [{"role": "user", "content": f"Is anyone there? ({n})"}]} for n in range(2)]
    (directory / "open.jsonl").write_text("".join(json.dumps(chat) + "\n" for chat in unanswered), encoding="utf-8")
    return [
        {"type": "csv", "path": "questions.csv", "label": "category", "dataset": "questions"},
        {"type": "csv", "path": "faq.csv", "prompt": "question", "response": "answer", "dataset": "faq"},
        {"type": "jsonl", "path": "open.jsonl", "messages": "messages", "dataset": "open"},
    ]


@pytest.fixture(scope="module")
def counted_release(shared_data, tmp_path_factory) -> Path:
    from conftest import write_config

    directory = tmp_path_factory.mktemp("tokens")
    release = {"name": "tok", "version": "1", "tokenizer": "smollm2", "max_tokens": MAX_TOKENS}
    config = write_config(
        directory, sources=write_inputs(directory, shared_data), split={"method": "random"}, release=release
    )
    return LocalExecutor(load_config(config), workers=1).build().release_dir


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from corpusmill.models import packaged_smollm2

    gguf = packaged_smollm2()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def test_token_counts_are_the_tokenizers_and_the_card_flags_what_does_not_fit(counted_release):
    tokenizer = smollm2_tokenizer()
    manifest = json.loads((counted_release / "manifest.json").read_text())
    tokens = manifest["tokens"]
    assert (tokens["tokenizer"], tokens["chat_template"], tokens["max_tokens"]) == ("smollm2", True, MAX_TOKENS)
    over, silent = [], 0
    for split, stats in tokens["splits"].items():
        records = [json.loads(line) for line in (counted_release / "jsonl" / f"{split}.jsonl").open()]
        counts = []
        for record in records:
            if record["text"] is not None:
                count = len(tokenizer(record["text"])["input_ids"])
            else:
                rendered = tokenizer.apply_chat_template(record["messages"], tokenize=True)
                count = len(rendered["input_ids"] if hasattr(rendered, "keys") else rendered)
                assert count > len(tokenizer(record["messages"][0]["content"])["input_ids"])  # the template's tokens
                silent += all(message["role"] != "assistant" for message in record["messages"])
            counts.append(count)
            over += [record["id"]] if count > MAX_TOKENS else []
        assert (stats["records"], stats["total"]) == (len(records), sum(counts))
        assert (stats["min"], stats["max"]) == (min(counts), max(counts))
        assert stats["over_max_tokens"] == sum(1 for count in counts if count > MAX_TOKENS)
    assert sorted(tokens["over_max_tokens_listed"]) == sorted(over) and over and silent == 2
    card = (counted_release / "README.md").read_text(encoding="utf-8")
    assert "## Tokens" in card and "Counted with `smollm2` (chats rendered with its chat template)" in card
    assert f"> **Warning:** {len(over)} records are longer than `max_tokens` ({MAX_TOKENS})" in card
    assert "> **Warning:** 2 chats have no assistant turn" in card
    assert f"One epoch over `train` reads {tokens['splits']['train']['total']:,} tokens" in card
    assert "![Token counts per split](plots/tokens.png)" in card
    assert (counted_release / "plots" / "tokens.png").read_bytes().startswith(b"\x89PNG")


def test_a_tokenizer_that_cannot_load_is_one_line_and_writes_no_release(shared_data, tmp_path):
    from conftest import write_config

    release = {"name": "tok", "version": "1", "tokenizer": str(tmp_path / "no-such-model")}
    config = write_config(tmp_path, sources=write_inputs(tmp_path, shared_data), release=release)
    failed = CliRunner().invoke(app, ["build", str(config), "--workers", "1"])
    assert failed.exit_code == 2
    [line] = failed.output.strip().splitlines()
    assert "release.tokenizer" in line and "no-such-model" in line
    assert not (tmp_path / "releases" / "tok" / "1").exists()


def test_max_tokens_needs_a_tokenizer():
    with pytest.raises(ValidationError, match="max_tokens needs a tokenizer"):
        ReleaseSpec(name="r", version="1", max_tokens=512)


def test_a_chat_the_template_refuses_is_one_line_naming_the_record():
    from corpusmill.errors import ReleaseError
    from corpusmill.schema import Record
    from corpusmill.tokens import TokenReport, _count_batch

    tokenizer = smollm2_tokenizer()
    tokenizer.chat_template = (  # as strict templates do: tool turns refused
        "{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tool turns') }}{% endif %}"
        "{{ m['content'] }}{% endfor %}"
    )
    source = {"kind": "import", "uri": "t", "dataset": "t"}
    chat = Record(id="t-1", messages=[{"role": "tool", "content": "{}"}], source=source, split="train")
    with pytest.raises(ReleaseError, match=r"^t-1: the chat template of smollm2 refuses this chat \(no tool turns\)"):
        _count_batch(tokenizer, [chat], TokenReport("smollm2", None, True))


def test_a_service_build_may_not_name_a_tokenizer_outside_its_workspace(tmp_path):
    from corpusmill.config import parse_config
    from corpusmill.errors import ConfigError

    config = {"sources": [{"type": "csv", "path": "in.csv"}], "release": {"name": "r", "version": "1"}}
    config["release"]["tokenizer"] = "/etc"
    with pytest.raises(ConfigError, match=r"release\.tokenizer: must stay inside the workspace"):
        parse_config(config, "config", tmp_path, workspace=tmp_path)
    config["release"]["tokenizer"] = "smollm2"  # a packaged name is a plain word: inside
    assert parse_config(config, "config", tmp_path, workspace=tmp_path).release.tokenizer == "smollm2"
