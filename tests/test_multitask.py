"""Multi-task learning on one MiniLM encoder, and transfer from an earlier run (issue 20), on
Banking77 with a second task derived by a written-down rule."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from corpusmill.config import load_config
from corpusmill.executor import LocalExecutor
from corpusmill.io import sha256_file
from training import ablate_tasks, train
from training.config import Hyperparameters, TaskSpec, TrainConfig

TOPIC_OF = {  # the second task: each intent's coarse topic, by this rule (Banking77 has one label)
    "card_arrival": "cards",
    "lost_or_stolen_card": "cards",
    "declined_card_payment": "cards",
    "pin_blocked": "pin",
    "change_pin": "pin",
    "exchange_rate": "fees",
    "cash_withdrawal_charge": "fees",
    "top_up_failed": "top_up",
    "transfer_not_received_by_recipient": "transfers",
    "beneficiary_not_allowed": "transfers",
}
UNLABELLED_EVERY = 7
"""Every seventh question has no topic: a record missing a task's label."""
TASKS = {"intent": TaskSpec(column="label"), "topic": TaskSpec(column="meta.topic", weight=0.5)}
QUICK = Hyperparameters(learning_rate=4e-4, epochs=2, batch_size=32, max_length=32, warmup_ratio=0.1, seed=1)


@pytest.fixture(scope="module")
def topic_release(shared_data, tmp_path_factory) -> Path:
    """60 questions of each of 10 intents, each with its topic (all but every seventh)."""
    directory = tmp_path_factory.mktemp("topics")
    with (shared_data / "banking77" / "train.csv").open(newline="", encoding="utf-8") as handle:
        by_intent: dict[str, list[str]] = {}
        for row in csv.DictReader(handle):
            if row["category"] in TOPIC_OF and len(by_intent.setdefault(row["category"], [])) < 60:
                by_intent[row["category"]].append(row["text"])
    rows = [(text, intent) for intent, texts in by_intent.items() for text in texts]
    with (directory / "questions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "intent", "topic"])
        for number, (text, intent) in enumerate(rows):
            writer.writerow([text, intent, "" if number % UNLABELLED_EVERY == 0 else TOPIC_OF[intent]])
    from conftest import write_config

    config = write_config(
        directory,
        sources=[{"type": "csv", "path": "questions.csv", "label": "intent", "meta": ["topic"]}],
        release={"name": "topics", "version": "1"},
    )
    return LocalExecutor(load_config(config), workers=1).build().release_dir


def test_one_minilm_encoder_learns_both_tasks_and_reports_each(topic_release, tmp_path):
    config = TrainConfig(hyperparameters=QUICK, tasks=TASKS)
    report = train(topic_release, "multi-task", "minilm", tmp_path / "run", config)
    test = report["test"]["metrics"]
    assert test["intent_accuracy"] >= 0.6, test  # chance: 0.10
    assert test["topic_accuracy"] >= 0.7, test  # chance: 0.20 (the largest topic holds 0.30)
    assert test["macro_f1"] == pytest.approx((test["intent_macro_f1"] + test["topic_macro_f1"]) / 2)
    topic = report["test"]["tasks"]["topic"]
    assert topic["labels"] == sorted(set(TOPIC_OF.values()))
    intent_records = report["test"]["tasks"]["intent"]["records"]
    assert topic["records"] < intent_records  # the unlabelled questions count for intent only
    assert sum(v["support"] for v in topic["per_class"].values()) == topic["records"]
    saved = tmp_path / "run" / "model"
    assert json.loads((saved / "multitask.json").read_text())["labels"]["topic"] == topic["labels"]
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "## Task `intent`" in markdown and "## Task `topic`" in markdown
    assert (tmp_path / "run" / "confusion_matrix_topic.png").exists()


def _task_and_batch(release: Path, tasks: dict[str, TaskSpec], weighting: str = "fixed"):  # type: ignore[no-untyped-def]
    import torch

    from training.models import resolve_base_model
    from training.multitask import MultiTaskTask
    from training.run import load_release

    splits, _ = load_release(release)
    task = MultiTaskTask(resolve_base_model("minilm"), splits, 32, tasks, weighting)
    rows = task.rows["train"][:8]
    batch = task.collator()([row for row in task.dataset("train").select(range(8))])
    return task, rows, batch, torch


def test_a_record_without_a_task_label_adds_no_loss_for_that_task(topic_release):
    task, rows, batch, torch = _task_and_batch(topic_release, TASKS)
    model = task.model(None).eval()
    with torch.no_grad():
        out = model(**batch)
        logits = {name: out["logits"][:, task.layout.logit_slots[name]] for name in TASKS}
        labels = batch["labels"]
        intent = torch.nn.functional.cross_entropy(logits["intent"], labels[:, 0].long())
        has_topic = labels[:, 1] != -100
        assert 0 < int(has_topic.sum()) < len(rows)  # some of the batch has no topic
        topic = torch.nn.functional.cross_entropy(logits["topic"][has_topic], labels[has_topic, 1].long())
        assert float(out["loss"]) == pytest.approx(float(intent + 0.5 * topic), rel=1e-6)
        none = labels.clone()
        none[:, 1] = -100  # a batch where no record has the topic: exactly the intent loss
        assert float(model(**{**batch, "labels": none})["loss"]) == pytest.approx(float(intent), rel=1e-6)


def test_a_task_of_weight_zero_stays_untrained_and_uncertainty_weights_learn(topic_release):
    tasks = {"intent": TaskSpec(column="label"), "topic": TaskSpec(column="meta.topic", weight=0)}
    task, _, batch, torch = _task_and_batch(topic_release, tasks)
    model = task.model(None)
    before = {name: head.weight.detach().clone() for name, head in model.heads.items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)
    for _ in range(2):
        optimizer.zero_grad()
        model(**batch)["loss"].backward()
        optimizer.step()
    assert torch.equal(model.heads["topic"].weight, before["topic"])  # no loss, no gradient, no decay
    assert not torch.equal(model.heads["intent"].weight, before["intent"])

    task, _, batch, torch = _task_and_batch(topic_release, TASKS, "uncertainty")
    model = task.model(None)
    assert model.log_variances.requires_grad and float(model.log_variances.abs().sum()) == 0
    model(**batch)["loss"].backward()
    assert float(model.log_variances.grad.abs().min()) > 0  # each task's weight is learned


def test_init_from_starts_from_the_earlier_runs_weights_and_records_the_chain(topic_release, tmp_path):
    import torch

    from training.config import TrainConfig
    from training.run import Experiment

    short = QUICK.model_copy(update={"max_steps": 2})
    first = train(topic_release, "classification", "minilm", tmp_path / "first", TrainConfig(hyperparameters=short))
    experiment = Experiment(
        topic_release,
        "classification",
        None,
        tmp_path / "second",
        TrainConfig(hyperparameters=short),
        tmp_path / "first",
    )
    assert experiment.model_name == "minilm"  # taken from the earlier run
    started = experiment.task.model(None, experiment.weights).eval()
    earlier = experiment.load_trained(tmp_path / "first" / "model").eval()
    batch = experiment.task.collator()([row for row in experiment.task.dataset("test").select(range(6))])
    batch.pop("labels")
    with torch.no_grad():
        assert torch.allclose(started(**batch).logits, earlier(**batch).logits)  # the same weights, before training
        fresh = experiment.task.model(None).eval()
        assert not torch.allclose(fresh(**batch).logits, earlier(**batch).logits)

    multi = Experiment(topic_release, "multi-task", None, tmp_path / "mt", TrainConfig(tasks=TASKS), tmp_path / "first")
    encoder = multi.task.model(None, multi.weights).encoder.state_dict()
    trained = earlier.base_model.state_dict()
    assert all(torch.equal(encoder[key], trained[key]) for key in encoder)  # the classifier's encoder

    second = train(
        topic_release,
        "classification",
        None,
        tmp_path / "second",
        TrainConfig(hyperparameters=short),
        init_from=tmp_path / "first",
    )
    chain = second["init_from"]
    assert chain["run"] == str(tmp_path / "first") and chain["base_model"] == "minilm"
    assert chain["report_sha256"] == sha256_file(tmp_path / "first" / "report.json")
    assert chain["release"]["manifest_sha256"] == first["release"]["manifest_sha256"]
    assert "Started from run" in (tmp_path / "second" / "report.md").read_text()


def test_ablate_tasks_trains_each_task_alone_and_all_together(topic_release, tmp_path):
    config = TrainConfig(hyperparameters=QUICK.model_copy(update={"max_steps": 1}), tasks=TASKS)
    report = ablate_tasks(topic_release, "multi-task", "minilm", tmp_path / "ablate", config, [1])
    assert set(report["runs"][0]) == {"seed", "together", "intent", "topic"}
    assert set(report["runs"][0]["intent"]) >= {"intent_accuracy", "macro_f1"}
    assert "topic_accuracy" not in report["runs"][0]["intent"]  # trained alone: only its own task
    for name in TASKS:
        entry = report["summary"][name][f"{name}_accuracy"]
        together, alone = report["runs"][0]["together"], report["runs"][0][name]
        assert entry["mean_difference"] == pytest.approx(
            together[f"{name}_accuracy"] - alone[f"{name}_accuracy"], abs=1e-5
        )
    table = (tmp_path / "ablate" / "ablation.md").read_text()
    assert "| intent | accuracy |" in table and "| topic | macro_f1 |" in table


def test_the_command_line_trains_multi_task_chains_runs_and_refuses_what_does_not_fit(topic_release, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from corpusmill.cli import app

    runner = CliRunner()
    config = tmp_path / "mt.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "tasks": {"intent": {"column": "label"}, "topic": {"column": "meta.topic", "weight": 0.5}},
                "loss_weighting": "uncertainty",
                "hyperparameters": {"max_steps": 1, "batch_size": 16, "max_length": 32},
            }
        )
    )
    first = runner.invoke(
        app,
        ["train", str(topic_release), "--task", "multi-task", "--config", str(config), "--out", str(tmp_path / "a")],
    )
    assert first.exit_code == 0, first.output
    assert json.loads((tmp_path / "a" / "report.json").read_text())["test"]["metrics"].keys() >= {"topic_accuracy"}
    second = runner.invoke(
        app,
        [
            "train",
            str(topic_release),
            "--task",
            "multi-task",
            "--config",
            str(config),
            "--init-from",
            str(tmp_path / "a"),
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert second.exit_code == 0, second.output
    assert json.loads((tmp_path / "b" / "report.json").read_text())["init_from"]["run"] == str(tmp_path / "a")
    for args, message in (
        (["ablate", str(topic_release), "--tasks", "--out", str(tmp_path / "c")], "--tasks needs --task multi-task"),
        (
            ["train", str(topic_release), "--objective", "words", "--out", str(tmp_path / "d")],
            "--objective must be lm, chat or auto",
        ),
        (
            ["train", str(topic_release), "--task", "regression", "--out", str(tmp_path / "e")],
            "--task must be classification, multi-task or causal-lm",
        ),
    ):
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2 and message in refused.output, refused.output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"column": "meta.topic", "prompt": "{text.__class__.__mro__}"}, "not {text.__class__.__mro__}"),
        ({"column": "meta.topic", "prompt": "{text!r} {labels:>9}"}, "only {task}, {labels} and {text}"),
        ({"column": "meta.topic", "prompt": "Topic of {labels}?"}, "must hold {text}"),
        ({"column": "topic"}, "must be 'label' or 'meta.<key>'"),
        ({"column": "label", "weight": 1e9}, "less than or equal to 100"),
    ],
)
def test_a_task_spec_a_client_could_abuse_is_refused(spec, message):
    """A service's client writes these: no attribute paths into str.format, no billion-fold sampling."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=re.escape(message)):
        TaskSpec(**spec)
