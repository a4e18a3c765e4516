"""End-to-end builds on real data: accounting, determinism, verify, datasets loading, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from corpusmill.cli import app
from corpusmill.config import load_config
from corpusmill.errors import ReleaseError
from corpusmill.executor import LocalExecutor
from corpusmill.release import verify_release

runner = CliRunner()

CLEAN = [
    {"step": "normalize"},
    {"step": "length", "min_words": 3},
    {"step": "exact_dedup"},
]


def banking_sources(shared: Path) -> list[dict]:
    return [
        {
            "type": "csv",
            "dataset": "banking77",
            "path": str(shared / "banking77" / "train.csv"),
            "text": "text",
            "label": "category",
        }
    ]


def build(config_path: Path, workers: int = 2):
    return LocalExecutor(load_config(config_path), workers=workers).build()


def data_files(release: Path) -> dict[str, bytes]:
    return {
        p.relative_to(release).as_posix(): p.read_bytes()
        for p in sorted(release.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


@pytest.fixture(scope="module")
def banking_release(shared_data, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("banking")
    config = directory / "build.yaml"
    from conftest import write_config

    config = write_config(directory, sources=banking_sources(shared_data), clean=CLEAN)
    return build(config).release_dir


def test_every_input_record_is_released_or_rejected_with_a_reason(banking_release):
    manifest = json.loads((banking_release / "manifest.json").read_text())
    accounting = manifest["accounting"]
    assert accounting["input_records"] == 10_003  # real CSV rows, quoted newlines included
    assert accounting["balanced"]
    assert accounting["rejected"]["clean.length"]["too_few_words"] > 0
    assert accounting["rejected"]["clean.exact_dedup"]["exact_duplicate"] > 0

    released = [
        json.loads(line)
        for split in ("train", "validation", "test")
        for line in (banking_release / "jsonl" / f"{split}.jsonl").read_text().splitlines()
    ]
    rejected = [
        json.loads(line)
        for f in sorted((banking_release / "rejects").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert all(r["reason"] for r in rejected)
    ids = [r["id"] for r in released] + [r["record"]["id"] for r in rejected]
    assert len(ids) == len(set(ids)) == 10_003
    assert {r["step"] for r in rejected} == {"clean.length", "clean.exact_dedup"}
    assert len(released) == accounting["released_records"]
    assert {r["split"] for r in released} == {"train", "validation", "test"}
    counts = {s: i["records"] for s, i in manifest["splits"].items()}
    total = sum(counts.values())
    assert abs(counts["train"] / total - 0.8) < 0.001 and abs(counts["test"] / total - 0.1) < 0.001


def test_verify_accepts_the_release_and_datasets_loads_it(banking_release):
    import datasets

    manifest = verify_release(banking_release)
    loaded = datasets.load_dataset(str(banking_release))
    assert {name: len(loaded[name]) for name in loaded} == {n: i["records"] for n, i in manifest["splits"].items()}
    row = loaded["train"][0]
    categories = json.loads((Path(__file__).parents[2] / "shared/data/banking77/categories.json").read_text())
    label = loaded["train"].features["label"]  # a ClassLabel: names in order, rows hold ids
    assert label.names == manifest["label_names"] == sorted(categories)
    card = (banking_release / "README.md").read_text()
    front = yaml.safe_load(card[4 : card.index("\n---\n", 4)])
    card_features = datasets.Features._from_yaml_list(front["dataset_info"]["features"])
    assert card_features["label"] == label  # the card declares the ClassLabel too (the Hub reads it there)
    assert isinstance(row["label"], int) and label.int2str(row["label"]) in categories
    first = json.loads((banking_release / "jsonl" / "train.jsonl").open().readline())
    assert label.int2str(row["label"]) == first["label"] and row["id"] == first["id"]
    assert row["source"]["dataset"] == "banking77"
    assert json.loads(row["meta"])["length"]["words"] >= 3


def test_card_reports_counts_labels_lengths_and_plots(banking_release):
    card = (banking_release / "README.md").read_text()
    manifest = json.loads((banking_release / "manifest.json").read_text())
    assert f"num_examples: {manifest['splits']['train']['records']}" in card
    assert "77 labels." in card
    assert "![Length histogram per split](plots/lengths.png)" in card
    assert (banking_release / "plots" / "labels.png").read_bytes().startswith(b"\x89PNG")
    for key in ("config", "config_sha256", "seed", "corpusmill_version", "git_commit", "libraries", "built_at"):
        assert key in manifest
    assert manifest["files"]["data/train-00000-of-00001.parquet"]["sha256"]
    # The YAML header, as the Hub reads it: each split's size and files, and the parquet's columns.
    from huggingface_hub import DatasetCard

    header = DatasetCard.load(banking_release / "README.md").data
    assert header.pretty_name == "test" and header.license == "other" and header.language == ["en"]
    total = sum(info["records"] for info in manifest["splits"].values())
    assert 1_000 <= total < 10_000 and header.size_categories == ["1K<n<10K"]
    declared = {split["name"]: split["num_examples"] for split in header.dataset_info["splits"]}
    assert declared == {name: info["records"] for name, info in manifest["splits"].items()}
    assert [config["config_name"] for config in header.configs] == ["default"]
    files = {entry["split"]: entry["path"] for entry in header.configs[0]["data_files"]}
    assert files == {name: f"data/{name}-*.parquet" for name in ("train", "validation", "test")}
    assert list(files) == ["train", "validation", "test"]  # in the config's order, train first
    columns = pq.read_schema(banking_release / "data" / "train-00000-of-00001.parquet").names
    assert [feature["name"] for feature in header.dataset_info["features"]] == columns


@pytest.mark.parametrize("tamper", ["parquet_byte", "jsonl_line", "manifest_count", "reject_line", "extra_file"])
def test_verify_catches_tampering(banking_release, tmp_path, tamper):
    copy = tmp_path / "release"
    shutil.copytree(banking_release, copy)
    manifest_path = copy / "manifest.json"
    if tamper == "parquet_byte":
        path = copy / "data" / "validation-00000-of-00001.parquet"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        expected = "validation-00000-of-00001.parquet: sha256 does not match"
    elif tamper == "jsonl_line":
        path = copy / "jsonl" / "test.jsonl"
        path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))
        expected = "test.jsonl: sha256 does not match"
    elif tamper == "manifest_count":
        manifest = json.loads(manifest_path.read_text())
        manifest["splits"]["train"]["records"] += 1
        manifest_path.write_text(json.dumps(manifest))
        expected = "split 'train' has"
    elif tamper == "reject_line":
        manifest = json.loads(manifest_path.read_text())
        manifest["accounting"]["rejected"]["clean.length"]["too_few_words"] -= 1
        manifest["accounting"]["rejected_total"] -= 1
        manifest_path.write_text(json.dumps(manifest))
        expected = "clean.length.jsonl:"
    else:
        (copy / "data" / "extra.parquet").write_bytes(b"x")
        expected = "extra.parquet: file is not listed"
    with pytest.raises(ReleaseError, match=expected):
        verify_release(copy)
    result = runner.invoke(app, ["release", "verify", str(copy)])
    assert result.exit_code == 1
    assert expected.split(":")[0] in result.output


def test_same_config_gives_the_same_bytes_whatever_the_worker_count(shared_data, tmp_path, make_config):
    releases = []
    for workers, name in ((1, "a"), (2, "b"), (3, "c")):
        directory = tmp_path / name
        directory.mkdir()
        config = make_config(directory, sources=banking_sources(shared_data), clean=CLEAN)
        releases.append(build(config, workers=workers).release_dir)
    first = data_files(releases[0])
    assert any(name.endswith(".parquet") for name in first)
    for other in releases[1:]:
        assert data_files(other) == first


def test_rebuild_is_up_to_date_and_a_changed_config_never_overwrites(tmp_path, make_config):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": f"record number {i}"}) + "\n" for i in range(20)))
    config = make_config(tmp_path, sources=[{"type": "jsonl", "path": "in.jsonl"}])
    first = build(config)
    before = data_files(first.release_dir)
    assert build(config).up_to_date
    config = make_config(tmp_path, sources=[{"type": "jsonl", "path": "in.jsonl"}], seed=99)
    result = runner.invoke(app, ["build", str(config)])
    assert result.exit_code == 1
    assert "already exists" in result.output and "bump release.version" in result.output
    assert data_files(first.release_dir) == before


def test_multi_label_and_chat_records_reach_the_release(tmp_path, make_config):
    rows = [{"text": f"question {i} about cards and fees", "tags": "card|fees" if i % 2 else "card"} for i in range(30)]
    (tmp_path / "ml.csv").write_text("text,tags\n" + "".join(f"{r['text']},{r['tags']}\n" for r in rows))
    chats = [
        {
            "messages": [
                {"role": "user", "content": f"How do I do thing {i}?"},
                {"role": "assistant", "content": f"Open settings and pick thing {i}."},
            ]
        }
        for i in range(10)
    ]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    config = make_config(
        tmp_path,
        sources=[
            {"type": "csv", "path": "ml.csv", "label": "tags", "label_sep": "|"},
            {"type": "jsonl", "path": "chat.jsonl", "messages": "messages"},
        ],
    )
    release = build(config).release_dir
    names = verify_release(release)["label_names"]
    assert names == ["card", "fees"]
    table = pq.read_table(release / "data" / "train-00000-of-00001.parquet")
    labels = [label for label in table.column("label").to_pylist() if label]  # ids into the names
    assert [0, 1] in labels and [0] in labels
    assert sum(1 for m in table.column("messages").to_pylist() if m) > 0
    import datasets

    loaded = datasets.load_dataset(str(release), split="train")
    assert loaded.features["label"].feature.names == names  # List(ClassLabel)
    assert [loaded.features["label"].feature.int2str(i) for i in labels[0]] in (["card", "fees"], ["card"])


# --- bad input --------------------------------------------------------------------------------


def _assert_failed_cleanly(result, tmp_path: Path, expected: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.output
    assert not (tmp_path / "releases" / "test" / "1.0.0").exists()
    assert not list((tmp_path / ".corpusmill" / "work").rglob("records.jsonl"))


def test_malformed_jsonl_line_names_file_and_line(tmp_path, make_config):
    good = json.dumps({"text": "fine"})
    (tmp_path / "in.jsonl").write_text(f'{good}\n{good}\n{{"text": "oops"\n{good}\n')
    result = runner.invoke(app, ["build", str(make_config(tmp_path, sources=[{"type": "jsonl", "path": "in.jsonl"}]))])
    _assert_failed_cleanly(result, tmp_path, "in.jsonl:3: invalid JSON")


def test_csv_row_with_wrong_field_count_names_its_first_line(tmp_path, make_config):
    (tmp_path / "in.csv").write_text('text,label\n"multi\nline text",a\nfine,b\nbroken,c,extra\n')
    result = runner.invoke(
        app, ["build", str(make_config(tmp_path, sources=[{"type": "csv", "path": "in.csv", "label": "label"}]))]
    )
    _assert_failed_cleanly(result, tmp_path, "in.csv:5: expected 2 fields, got 3")


def test_csv_missing_column_is_named_with_the_columns_present(tmp_path, make_config):
    (tmp_path / "in.csv").write_text("text,category\nhello there,a\n")
    result = runner.invoke(
        app, ["build", str(make_config(tmp_path, sources=[{"type": "csv", "path": "in.csv", "label": "intent"}]))]
    )
    _assert_failed_cleanly(result, tmp_path, "in.csv:1: unknown column 'intent' (columns: text, category)")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty input"),
        (b"text\n", "empty input: a header but no rows"),
        (b"text\nfine line\ncaf\xe9 latin-1\n", "in.csv:3: not valid utf-8"),
    ],
)
def test_empty_or_undecodable_csv(tmp_path, make_config, content, expected):
    (tmp_path / "in.csv").write_bytes(content)
    source = {"type": "csv", "path": "in.csv", "encoding": "utf-8"}
    result = runner.invoke(app, ["build", str(make_config(tmp_path, sources=[source]))])
    _assert_failed_cleanly(result, tmp_path, expected)


def test_unreadable_file(tmp_path, make_config):
    result = runner.invoke(
        app, ["build", str(make_config(tmp_path, sources=[{"type": "jsonl", "path": "nope.jsonl"}]))]
    )
    _assert_failed_cleanly(result, tmp_path, "nope.jsonl: cannot read: No such file or directory")


def test_on_error_skip_rejects_bad_lines_and_still_balances(tmp_path, make_config):
    lines = [json.dumps({"text": f"good line {i}"}) for i in range(10)]
    lines[3] = "{not json"
    lines[7] = json.dumps(["a", "list"])
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    config = make_config(tmp_path, sources=[{"type": "jsonl", "path": "in.jsonl", "on_error": "skip"}])
    release = build(config).release_dir
    manifest = verify_release(release)
    assert manifest["accounting"]["input_records"] == 10
    assert manifest["accounting"]["rejected"] == {"read.in": {"malformed_json": 1, "not_an_object": 1}}
    rejects = [json.loads(x) for x in (release / "rejects" / "read.in.jsonl").read_text().splitlines()]
    assert [r["where"].rsplit(":", 1)[1] for r in rejects] == ["4", "8"]
    assert rejects[0]["raw"] == "{not json"


def test_config_error_exits_2_with_one_line(tmp_path, make_config):
    config = make_config(tmp_path, sources=[{"type": "jsonl", "path": "x"}], split={"ratios": {"train": 0.5}})
    result = runner.invoke(app, ["build", str(config)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {config}: split.ratios: must sum to 1 (got 0.5)"


def test_a_build_written_as_one_list_of_steps_runs_and_matches_the_sections_form(shared_data, tmp_path):
    """A reader, two filters, a splitter and the writer, in one ``steps:`` list: the same release
    bytes as the sections form, and errors told at the list entry the user wrote."""
    import yaml

    steps = {
        "seed": 7,
        "steps": [
            {"read": "csv", **{k: v for k, v in banking_sources(shared_data)[0].items() if k != "type"}},
            {"clean": "length", "min_words": 3},
            {"clean": "exact_dedup"},
            {"split": "stratified", "ratios": {"train": 0.8, "validation": 0.1, "test": 0.1}},
            {"write": "release", "name": "listed", "version": "1.0.0"},
        ],
    }
    sections = {
        "seed": 7,
        "sources": banking_sources(shared_data),
        "clean": [{"step": "length", "min_words": 3}, {"step": "exact_dedup"}],
        "split": {"ratios": {"train": 0.8, "validation": 0.1, "test": 0.1}},
        "release": {"name": "listed", "version": "1.0.0"},
    }
    releases = {}
    for name, config in (("steps", steps), ("sections", sections)):
        (tmp_path / name).mkdir()
        path = tmp_path / name / "build.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        result = build(path, workers=1)
        releases[name] = result.release_dir
        assert [segment.name for segment in result.segments] == [
            "00.read.banking77",
            "01.clean.exact_dedup",
            "02.split.stratified",
        ]
    assert data_files(releases["steps"]) == data_files(releases["sections"])
    manifest = verify_release(releases["steps"])
    assert set(manifest["accounting"]["rejected"]) == {"clean.length", "clean.exact_dedup"}

    from corpusmill.errors import ConfigError

    for broken, message in (
        (
            {**steps, "steps": [steps["steps"][0], {"clean": "length", "min_word": 3}, steps["steps"][-1]]},
            "steps[1].min_word: unknown key",
        ),
        ({**steps, "steps": steps["steps"][:4]}, "steps: end with a 'write: release' step"),
        ({**steps, "steps": [steps["steps"][3], steps["steps"][0]]}, "steps[1]: a read step after a split step"),
        ({**steps, "steps": [{"clean": "length", "read": "csv"}]}, "steps[0]: name the step with exactly one of"),
        ({**steps, "clean": []}, "clean: give either a steps list or sections"),
    ):
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(broken), encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert message in str(info.value)


def test_the_executor_reports_the_segments_a_build_finished(banking_release):
    """What the service shows for a job: each finished checkpoint and its record count."""
    work = banking_release.parents[2] / ".corpusmill" / "work" / "test-1.0.0"
    manifest = json.loads((banking_release / "manifest.json").read_text())
    progress = LocalExecutor.progress_of(work)
    assert progress["segments_done"] == [segment["name"] for segment in manifest["segments"]]
    assert progress["segments_done"] == ["00.read.banking77", "01.clean.exact_dedup", "02.split.stratified"]
    assert progress["records_out"] == {segment["name"]: segment["records_out"] for segment in manifest["segments"]}
    assert progress["running"] == []
    (work / ".03.augment.eda.partial").mkdir()  # how a segment's directory is named while it is built
    assert LocalExecutor.progress_of(work)["running"] == ["03.augment.eda"]
    (work / ".03.augment.eda.partial").rmdir()
    empty = {"segments_done": [], "records_out": {}, "running": []}
    assert LocalExecutor.progress_of(work / "nothing-here") == empty


class RecordingHub:
    """Stands in for ``huggingface_hub.HfApi``: records what a push asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **options):
        self.calls.append(("create_repo", {"repo_id": repo_id, **options}))

    def upload_folder(self, **options):
        self.calls.append(("upload_folder", options))
        return type("Commit", (), {"commit_url": f"https://hub.example/datasets/{options['repo_id']}/commit/1"})()


def test_push_uploads_exactly_the_verified_release_files(banking_release, tmp_path):
    from corpusmill.hub import push_release

    copy = tmp_path / "release"
    shutil.copytree(banking_release, copy)
    hub = RecordingHub()
    url = push_release(copy, "parcelly/helpdesk", private=True, api=hub)
    assert url == "https://hub.example/datasets/parcelly/helpdesk/commit/1"
    (create, created), (upload, uploaded) = hub.calls
    assert create == "create_repo" and created == {
        "repo_id": "parcelly/helpdesk",
        "repo_type": "dataset",
        "private": True,
        "exist_ok": True,
    }
    on_disk = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert upload == "upload_folder" and uploaded["allow_patterns"] == on_disk
    assert "manifest.json" in on_disk and "README.md" in on_disk and any(p.startswith("data/") for p in on_disk)
    assert uploaded["repo_type"] == "dataset" and uploaded["folder_path"] == str(copy)

    with pytest.raises(ReleaseError, match="not a Hub repository id"):
        push_release(copy, "parcelly/help desk!", api=RecordingHub())
    (copy / "jsonl" / "train.jsonl").write_text("{}\n")  # a release that fails verify is not pushed
    with pytest.raises(ReleaseError, match=r"train\.jsonl"):
        push_release(copy, "parcelly/helpdesk", api=RecordingHub())


def test_push_to_an_unreachable_hub_is_one_line_and_pushes_nothing(banking_release, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    base |= {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": "hf_test"}
    command = [sys.executable, "-m", "corpusmill", "release", "push", str(banking_release), "--repo-id", "org/name"]
    for env, why in ((base, "cannot reach the Hub"), ({**base, "HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set")):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 1
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"error: http://127.0.0.1:{port}/datasets/org/name: {why}")
        assert line.endswith("nothing was pushed") and "Traceback" not in done.stderr
