"""Conversational data into chat records with import options alone: prompt/response columns and
dialogue turns with their own speaker names (issue 19), on real Taskmaster dialogues."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from corpusmill.cli import app
from corpusmill.config import load_config
from corpusmill.errors import InputError
from corpusmill.executor import LocalExecutor
from crawlers.importers import ImportSource
from crawlers.importers.mapping import FieldMapping

runner = CliRunner()

FAQ = [  # a help desk's FAQ export: the answer as plain text and as the HTML the site shows
    ("How do I track my parcel?", "<p>Open <b>Deliveries</b> in the app &amp; pick the parcel.</p>"),
    ("My parcel arrived damaged!", "<p>Sorry! Send photos within <em>48 hours</em>:</p><ul><li>the box</li></ul>"),
    ("Can I change the delivery address?", "<p>Yes, until the parcel is on a van; then only to a locker.</p>"),
    ("Coffee", "<p>Depots sell no coffee, but most lockers stand next to a caf&eacute;.</p>"),
    ("Do you deliver on Sundays?", "<p>Only in <a href='/cities'>large cities</a>, between 10:00 and 16:00.</p>"),
    ("How heavy can a parcel be?", "<p>Up to 31.5&nbsp;kg; heavier goods go as freight.</p>"),
    ("What does 'held at depot' mean?", "<p>We could not deliver it; it waits 7 days at the depot.</p>"),
    ("Can I send a parcel abroad?", "<p>Yes, to 41 countries. Customs forms are filled in online.</p>"),
    ("How do I return a parcel?", "<p>Print the label from your account and drop the parcel at any locker.</p>"),
    ("Who signs for my parcel if I'm out?", "<p>A neighbour may sign, unless you opt out in the app.</p>"),
]


def write_faq(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer", "answer_html"])
        for question, html in FAQ:
            writer.writerow([question, html.replace("<p>", "").replace("</p>", ""), html])


def released_records(release: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((release / "jsonl").glob("*.jsonl")) for line in path.open()]


def test_a_faq_csv_with_html_answers_becomes_a_chat_release(tmp_path, make_config):
    write_faq(tmp_path / "faq.csv")
    source = {"type": "csv", "path": "faq.csv", "prompt": "question", "response": "answer_html"}
    source["system"] = "You are Parcelly's help desk."
    config = make_config(tmp_path, sources=[source], clean=[{"step": "html_to_text"}], split={"method": "random"})
    result = LocalExecutor(load_config(config), workers=1).build()
    records = released_records(result.release_dir)
    assert len(records) == len(FAQ)
    by_question = {r["messages"][1]["content"]: r for r in records}
    assert set(by_question) == {question for question, _ in FAQ}  # headings without "?" too
    for record in records:
        assert record["text"] is None
        assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
        assert record["messages"][0]["content"] == "You are Parcelly's help desk."
        assert "<" not in record["messages"][2]["content"]
    assert by_question["How do I track my parcel?"]["messages"][2]["content"] == (
        "Open Deliveries in the app & pick the parcel."
    )


def test_a_system_column_gives_each_row_its_own_system_prompt_and_an_empty_cell_none(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"q": "Hi", "a": "Hello! How can I help?", "persona": "You are terse."},
        {"q": "Track PX1", "a": "It is out for delivery.", "persona": ""},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    records = list(ImportSource(dataset="t", path=path, prompt="q", response="a", system_col="persona").run())
    assert [[(m.role, m.content) for m in r.messages] for r in records] == [
        [("system", "You are terse."), ("user", "Hi"), ("assistant", "Hello! How can I help?")],
        [("user", "Track PX1"), ("assistant", "It is out for delivery.")],
    ]


def test_taskmaster_dialogues_become_one_chat_record_each(shared_data, tmp_path):
    """Taskmaster-4: a JSON list whose speakers are already roles; Taskmaster-1: one dialogue
    object per file with upper-case speakers, mapped by ``roles``."""
    folder = shared_data / "dialogue" / "taskmaster"
    dialogues = json.loads((folder / "tm4-coffee-data_07.json").read_text(encoding="utf-8"))
    out = tmp_path / "tm4.jsonl"
    options = ["--turns", "utterances", "--role-key", "speaker", "--content-key", "text"]
    options += ["--id", "conversation_id", "--label", "scenario"]
    done = runner.invoke(app, ["import", str(folder / "tm4-coffee-data_07.json"), "--out", str(out), *options])
    assert done.exit_code == 0, done.output
    records = [json.loads(line) for line in out.open()]
    assert len(records) == len(dialogues) == 210
    for record, dialogue in zip(records, dialogues, strict=True):
        assert record["id"].endswith(dialogue["conversation_id"]) and record["label"] == dialogue["scenario"]
        assert [(m["role"], m["content"]) for m in record["messages"]] == [
            (u["speaker"], u["text"]) for u in dialogue["utterances"]
        ]

    sample = json.loads((folder / "tm1-sample.json").read_text(encoding="utf-8"))
    [record] = ImportSource(
        dataset="tm1",
        path=folder / "tm1-sample.json",
        turns="utterances",
        role_key="speaker",
        content_key="text",
        roles="USER=user,ASSISTANT=assistant",
        system="You take restaurant bookings.",
    ).run()
    assert [m.role for m in record.messages] == ["system"] + [u["speaker"].lower() for u in sample["utterances"]]
    assert record.messages[1].content == sample["utterances"][0]["text"]


def test_a_speaker_the_roles_do_not_map_is_one_line_naming_the_value_and_the_line(tmp_path):
    path = tmp_path / "dialogues.jsonl"
    lines = [
        {"dialogue": {"turns": [{"speaker": "USER", "utterance": "Hi"}, {"speaker": "SYSTEM", "utterance": "Hey"}]}},
        {"dialogue": {"turns": [{"speaker": "USER", "utterance": "Hi"}, {"speaker": "AGENT", "utterance": "Yo"}]}},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    options = ["--turns", "dialogue.turns", "--role-key", "speaker", "--content-key", "utterance"]
    options += ["--roles", "USER=user,SYSTEM=assistant"]
    failed = runner.invoke(app, ["import", str(path), "--out", str(tmp_path / "out.jsonl"), *options])
    assert failed.exit_code == 1
    [line] = failed.output.strip().splitlines()
    assert f"{path}:2" in line and "'AGENT'" in line and "USER, SYSTEM" in line
    assert not (tmp_path / "out.jsonl").exists()

    ok = runner.invoke(
        app,
        [
            "import",
            str(path),
            "--out",
            str(tmp_path / "ok.jsonl"),
            *options[:-1],
            "USER=user,SYSTEM=assistant,AGENT=assistant",
        ],
    )
    assert ok.exit_code == 0, ok.output
    second = json.loads((tmp_path / "ok.jsonl").read_text().splitlines()[1])
    assert second["messages"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"prompt": "q"}, "'prompt' and 'response' go together"),
        ({"prompt": "q", "response": "a", "text": "t"}, "give one of"),
        ({"turns": "t", "messages": "m"}, "give one of"),
        ({"system": "Be brief."}, "add a system prompt to chats made from"),
        ({"turns": "t", "system": "a", "system_col": "b"}, "either 'system' or 'system_col'"),
        ({"roles": {"USER": "user"}}, "'roles' maps the speakers of 'turns'"),
        ({"turns": "t", "roles": "USER"}, "SPEAKER=role pairs"),
        ({"turns": "t", "roles": {"USER": "customer"}}, "Input should be 'system', 'user', 'assistant' or 'tool'"),
    ],
)
def test_chat_options_that_do_not_fit_together_are_refused(options, expected):
    with pytest.raises(ValidationError, match=expected):
        FieldMapping(path="in.csv", **options)


def test_a_directory_imports_its_dataset_files_by_format_and_lists_what_it_skipped(shared_data, tmp_path):
    """A folder of dialogue files (a list of dialogues, one dialogue object), their README and a
    file of no known format: chats, a document, and a reject naming the skipped file."""
    folder = tmp_path / "dialogues"
    folder.mkdir()
    taskmaster = shared_data / "dialogue" / "taskmaster"
    for name in ("tm4-coffee-data_07.json", "tm1-sample.json", "TM-4-README.md"):
        (folder / name).write_bytes((taskmaster / name).read_bytes())
    (folder / "speakers.png").write_bytes(b"\x89PNG\r\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the corpus")
    (folder / "linked.txt").symlink_to(secret)  # a link out of the folder is never read
    out = tmp_path / "out.jsonl"
    options = ["--turns", "utterances", "--role-key", "speaker", "--content-key", "text"]
    options += ["--roles", "user=user,assistant=assistant,USER=user,ASSISTANT=assistant"]
    done = runner.invoke(app, ["import", str(folder), "--out", str(out), *options])
    assert done.exit_code == 0, done.output
    assert "dir: 214 rows in, 212 records out, rejected: outside_directory: 1, skipped_file: 1" in done.output
    records = [json.loads(line) for line in out.open()]
    assert [r["source"]["uri"] for r in records if r["text"]] == ["TM-4-README.md"]
    by_file = {uri: sum(r["source"]["uri"] == uri for r in records) for uri in {r["source"]["uri"] for r in records}}
    assert by_file == {"TM-4-README.md": 1, "tm1-sample.json": 1, "tm4-coffee-data_07.json": 210}
    rejects = [json.loads(line) for line in (tmp_path / "out.rejects.jsonl").open()]
    assert [(r["reason"], r["raw"]) for r in rejects] == [
        ("outside_directory", "linked.txt"),
        ("skipped_file", "speakers.png"),
    ]
    assert "not for the corpus" not in out.read_text()

    (folder / "TM-4-README.md").unlink()
    (folder / "linked.txt").unlink()
    for name in ("tm4-coffee-data_07.json", "tm1-sample.json"):
        (folder / name).unlink()
    failed = runner.invoke(app, ["import", str(folder), "--out", str(tmp_path / "none.jsonl")])
    assert failed.exit_code == 1
    assert f"{folder}: nothing importable: 1 files, 1 of no known format" in failed.output


@pytest.mark.parametrize(
    ("turn", "roles", "expected"),
    [
        ({"speaker": {"name": "USER"}, "text": "Hi"}, "USER=user", "turns[1].speaker must be a string, got dict"),
        ({"speaker": "USER", "text": "Hi"}, None, "turns[1].speaker is 'USER', not a chat role (system, user"),
        ({"speaker": "user", "text": 7}, None, "turns[1].text must be a string, got int"),
    ],
)
def test_a_turn_that_cannot_become_a_message_names_its_file_line_and_key(tmp_path, turn, roles, expected):
    path = tmp_path / "dialogues.jsonl"
    path.write_text(json.dumps({"turns": [turn]}) + "\n", encoding="utf-8")
    options = {"turns": "turns", "role_key": "speaker", "content_key": "text"} | ({"roles": roles} if roles else {})
    with pytest.raises(InputError) as caught:
        list(ImportSource(dataset="t", path=path, **options).run())
    assert str(caught.value).startswith(f"{path}:1: ") and expected in str(caught.value)
