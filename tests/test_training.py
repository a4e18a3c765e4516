"""The thin trainer: real transfer learning with MiniLM, a tiny GPT-2 on chats, search and ablation."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from corpusmill.config import load_config
from corpusmill.executor import LocalExecutor
from training import ablate, train
from training.config import Hyperparameters, Objective, SearchSpace, TaskSpec, TrainConfig
from training.tasks import CausalLMTask

INTENTS = [
    "card_arrival",
    "lost_or_stolen_card",
    "exchange_rate",
    "cash_withdrawal_charge",
    "top_up_failed",
    "pin_blocked",
    "transfer_not_received_by_recipient",
    "beneficiary_not_allowed",
    "declined_card_payment",
    "change_pin",
]


@pytest.fixture(scope="module")
def banking_release(shared_data, tmp_path_factory) -> Path:
    """10 intents of Banking77 (~1,200 rows) split 80/10/10, with typo-noise augmentation of train."""
    directory = tmp_path_factory.mktemp("b10")
    with (shared_data / "banking77" / "train.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["category"] in INTENTS]
    (directory / "b10.jsonl").write_text(
        "".join(json.dumps({"text": r["text"], "label": r["category"]}) + "\n" for r in rows)
    )
    from conftest import write_config

    config = write_config(
        directory,
        sources=[{"type": "jsonl", "path": "b10.jsonl", "label": "label"}],
        clean=[{"step": "normalize"}, {"step": "exact_dedup"}],
        augment=[{"step": "eda", "operation": "typo", "rate": 0.1}],
        release={"name": "b10", "version": "1"},
    )
    return LocalExecutor(load_config(config), workers=2).build().release_dir


FAST = Hyperparameters(learning_rate=4e-4, epochs=1, batch_size=32, max_length=40, warmup_ratio=0.1, seed=1)


def test_minilm_learns_banking_intents(banking_release, tmp_path):
    short = FAST.model_copy(update={"max_steps": 40, "learning_rate": 6e-4})  # 0.94 accuracy here, in 40 steps
    report = train(banking_release, "classification", "minilm", tmp_path / "run", TrainConfig(hyperparameters=short))
    test = report["test"]["metrics"]
    assert test["accuracy"] >= 0.80, test  # chance is 0.10
    assert report["test_evaluations"] == 1 and report["search"]["evaluated_on"] == "validation"
    assert set(report["test"]["per_class"]) == set(INTENTS)
    assert len(report["test"]["confusion_matrix"]) == 10
    assert report["release"]["manifest_sha256"]
    for name in ("report.json", "report.md", "curves.png", "confusion_matrix.png", "model/config.json"):
        assert (tmp_path / "run" / name).exists(), name


def test_minilm_learns_multi_label_topics(shared_data, tmp_path):
    """Banking77 questions labelled with every topic word they contain (card, money, account,
    payment): a multi-label release, a sigmoid head, and per-label F1 well above chance."""
    topics = ("card", "money", "account", "payment")
    with (shared_data / "banking77" / "train.csv").open(newline="", encoding="utf-8") as handle:
        rows = [
            {"text": r["text"], "labels": [t for t in topics if t in r["text"].lower()]} for r in csv.DictReader(handle)
        ]
    rows = [r for r in rows if r["labels"]][::5][:900]  # every fifth: all 77 intents, not the first few
    assert sum(len(r["labels"]) > 1 for r in rows) > 100  # really multi-label
    (tmp_path / "topics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from conftest import write_config

    config = write_config(
        tmp_path,
        sources=[{"type": "jsonl", "path": "topics.jsonl", "label": "labels"}],
        release={"name": "topics", "version": "1"},
    )
    release = LocalExecutor(load_config(config), workers=1).build().release_dir
    report = train(release, "classification", "minilm", tmp_path / "run", TrainConfig(hyperparameters=FAST))
    assert set(report["test"]["per_class"]) == set(topics)
    assert "confusion_matrix" not in report["test"]  # a single-label notion
    assert report["test"]["metrics"]["macro_f1"] >= 0.8, report["test"]
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["problem_type"] == "multi_label_classification"


def test_search_keeps_the_best_by_the_declared_objective_and_never_sees_test(banking_release, tmp_path, monkeypatch):
    import training.run as run

    seen_splits: list[str] = []
    original = run.TASKS["classification"].dataset

    def spy(self, split, drop_augmented=False):
        seen_splits.append(split)
        return original(self, split, drop_augmented)

    monkeypatch.setattr(run.TASKS["classification"], "dataset", spy)
    space = SearchSpace(
        strategy="grid",
        space={"learning_rate": [1e-6, 3e-4]},
        objective=Objective(metric="accuracy", direction="maximize"),
    )
    hp = FAST.model_copy(update={"max_steps": 12})  # enough for 3e-4 to leave 1e-6 behind
    report = train(
        banking_release, "classification", "minilm", tmp_path / "search", TrainConfig(hyperparameters=hp), space
    )
    trials = report["search"]["trials"]
    assert [t["hyperparameters"]["learning_rate"] for t in trials] == [1e-6, 3e-4]
    best = max(trials, key=lambda t: t["validation"]["accuracy"])
    assert report["hyperparameters"]["learning_rate"] == best["hyperparameters"]["learning_rate"] == 3e-4
    assert seen_splits.index("test") == len(seen_splits) - 1  # test is read once, after every trial
    assert seen_splits.count("test") == 1
    low, high = (t["validation"]["accuracy"] for t in trials)
    assert Objective(metric="accuracy", direction="minimize").better(low, high)  # the flip side, without retraining


@pytest.mark.parametrize(
    ("direction", "scores", "best"),
    [
        ("maximize", {1e-5: 0.40, 3e-5: 0.90, 1e-4: 0.60}, 3e-5),  # the best is neither first nor last
        ("minimize", {1e-5: 0.70, 3e-5: 0.20, 1e-4: 0.50}, 3e-5),
        ("minimize", {1e-5: 0.10, 3e-5: 0.20, 1e-4: 0.50}, 1e-5),
        ("maximize", {1e-5: 0.10, 3e-5: 0.20, 1e-4: 0.50}, 1e-4),
    ],
)
def test_search_keeps_the_best_trial_by_the_objective_wherever_it_falls(
    banking_release, tmp_path, monkeypatch, direction, scores, best
):
    """The search loop alone, with training stubbed out by fixed validation scores: the model it
    keeps in ``out/model`` is the best trial's, not the last one's."""
    from training.run import Experiment, Trial

    class SavedTrainer:
        def __init__(self, learning_rate: float) -> None:
            self.learning_rate = learning_rate

        def save_model(self, directory: str) -> None:
            Path(directory).mkdir(parents=True, exist_ok=True)
            (Path(directory) / "trained_with.txt").write_text(repr(self.learning_rate))

    def fixed_scores(self, hp, workdir, drop_augmented=False):
        return SavedTrainer(hp.learning_rate), Trial(hp, {"accuracy": scores[hp.learning_rate]}, 0.0)

    monkeypatch.setattr(Experiment, "train_once", fixed_scores)
    experiment = Experiment(banking_release, "classification", "minilm", tmp_path, TrainConfig(hyperparameters=FAST))
    space = SearchSpace(
        space={"learning_rate": list(scores)}, objective=Objective(metric="accuracy", direction=direction)
    )
    chosen, trials = experiment.search(space)
    assert [t.hyperparameters.learning_rate for t in trials] == list(scores)
    assert chosen.hyperparameters.learning_rate == best
    assert (tmp_path / "model" / "trained_with.txt").read_text() == repr(best)


def test_random_search_samples_distinct_grid_points_reproducibly():
    space = {"learning_rate": [1e-5, 3e-5, 1e-4, 3e-4], "batch_size": [8, 16, 32], "epochs": [1, 2]}
    grid = SearchSpace(space=space).candidates(FAST)
    assert len(grid) == 24
    picks = [SearchSpace(strategy="random", trials=5, seed=seed, space=space).candidates(FAST) for seed in (0, 0, 1)]
    keys = [[(c.learning_rate, c.batch_size, c.epochs) for c in pick] for pick in picks]
    assert len(keys[0]) == len(set(keys[0])) == 5
    assert set(keys[0]) <= {(c.learning_rate, c.batch_size, c.epochs) for c in grid}
    assert keys[0] == keys[1] and keys[0] != keys[2]  # the seed decides, and only the seed
    assert all(c.max_length == FAST.max_length for c in picks[0])  # unsearched settings kept
    assert len(SearchSpace(strategy="random", trials=99, space=space).candidates(FAST)) == 24


def test_ablation_runs_both_arms_and_reports_the_difference(banking_release, tmp_path):
    # Wiring, not learning: what each arm trained on and how the runs are summarised.
    hp = FAST.model_copy(update={"max_steps": 4, "max_length": 32, "batch_size": 16})
    report = ablate(
        banking_release, "classification", "minilm", tmp_path / "ablate", TrainConfig(hyperparameters=hp), seeds=[1, 2]
    )
    augmented = report["augmented_train_records"]
    assert augmented > 0
    # the "without" arm really trained on the train split less every augmented record
    assert report["train_records"]["with"] - report["train_records"]["without"] == augmented
    assert len(report["runs"]) == 2 and all({"with", "without"} <= set(r) for r in report["runs"])
    summary = report["summary"]["accuracy"]
    assert summary["mean_difference"] == pytest.approx(summary["with_mean"] - summary["without_mean"], abs=1e-5)
    differences = [r["with"]["accuracy"] - r["without"]["accuracy"] for r in report["runs"]]
    assert summary["stdev"] == pytest.approx(statistics.stdev(differences), abs=1e-5)
    assert (tmp_path / "ablate" / "ablation.md").read_text().count("|") > 10


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A 2-layer GPT-2 from GPT2Config with a byte-level BPE tokenizer trained here (no hub)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("gpt2")
    texts = [
        f"<|user|>\nHow do I {a} my {b}?\n<|assistant|>\nOpen the app and {a} the {b} in Settings.\n"
        for a in ("reset", "change", "lock", "find", "renew")
        for b in ("card", "pin", "password", "account")
    ]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts * 20, vocab_size=400, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.save_pretrained(out)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=2,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def chat_release(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("chat")
    chats = [
        {
            "messages": [
                {"role": "system", "content": "You are the Parcelly assistant."},
                {"role": "user", "content": f"How do I {a} my {b}?"},
                {"role": "assistant", "content": f"Open the app and {a} the {b} in Settings."},
            ]
        }
        for a in ("reset", "change", "lock", "find", "renew", "update", "check", "view")
        for b in ("card", "pin", "password", "account", "address", "parcel", "locker", "refund")
    ]
    (directory / "chats.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    from conftest import write_config

    config = write_config(
        directory,
        sources=[{"type": "jsonl", "path": "chats.jsonl", "messages": "messages"}],
        release={"name": "chats", "version": "1"},
    )
    return LocalExecutor(load_config(config), workers=1).build().release_dir


def test_only_assistant_tokens_carry_loss(tiny_gpt2, chat_release):
    from training.run import load_release

    splits, _ = load_release(chat_release)
    task = CausalLMTask(str(tiny_gpt2), splits, max_length=128)
    row = task.rows["train"][0]
    ids, labels = task.encode(row)
    labelled = task.tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != -100])
    assistant = row["messages"][-1]["content"]
    assert labelled == assistant + "\n<|endoftext|>"  # the answer and its end, nothing else
    text_ids, text_labels = task.encode({"text": "Plain text is ordinary LM data.", "messages": None})
    assert text_ids == text_labels


def test_tiny_gpt2_perplexity_falls_with_training(tiny_gpt2, chat_release, tmp_path):
    before = train(
        chat_release,
        "causal-lm",
        str(tiny_gpt2),
        tmp_path / "short",
        TrainConfig(
            hyperparameters=Hyperparameters(learning_rate=1e-5, epochs=1, batch_size=8, max_length=64),
            generation_samples=0,
        ),
    )
    after = train(
        chat_release,
        "causal-lm",
        str(tiny_gpt2),
        tmp_path / "long",
        TrainConfig(
            hyperparameters=Hyperparameters(learning_rate=3e-3, epochs=8, batch_size=8, max_length=64),
            generation_samples=4,
        ),
    )
    assert after["validation"]["perplexity"] < before["validation"]["perplexity"] / 2
    assert after["objective"] == {"metric": "perplexity", "direction": "minimize"}
    assert after["test"]["metrics"]["next_token_accuracy"] > before["test"]["metrics"]["next_token_accuracy"]
    assert 0 < after["test"]["metrics"]["distinct_1"] <= 1  # greedy answers to 4 test prompts, scored
    assert len(after["test"]["answers"]) == 4 and "answers" not in before["test"]


def dropout_rates(model) -> set[float]:  # type: ignore[no-untyped-def]
    import torch

    return {round(m.p, 6) for m in model.modules() if isinstance(m, torch.nn.Dropout)}


def test_dropout_reaches_every_dropout_layer_of_both_kinds_of_model(banking_release, chat_release, tiny_gpt2):
    """``dropout`` is written into every dropout field the config has: hidden, attention and
    classifier dropout of a BERT encoder (MiniLM), residual, embedding and attention dropout of
    GPT-2; left alone, the models keep their own rates."""
    from training.models import resolve_base_model
    from training.run import load_release
    from training.tasks import ClassificationTask

    banking, _ = load_release(banking_release)
    minilm = ClassificationTask(resolve_base_model("minilm"), banking, max_length=32)
    assert dropout_rates(minilm.model(0.37)) == {0.37}
    assert dropout_rates(minilm.model(None)) == {0.1}  # MiniLM's own
    chats, _ = load_release(chat_release)
    gpt2 = CausalLMTask(str(tiny_gpt2), chats, max_length=64)
    tuned = gpt2.model(0.23)
    assert dropout_rates(tuned) == {0.23}
    assert (tuned.config.resid_pdrop, tuned.config.embd_pdrop, tuned.config.attn_pdrop) == (0.23, 0.23, 0.23)


def test_early_stopping_ends_training_when_validation_stops_improving(chat_release, tiny_gpt2, tmp_path):
    """A learning rate too small to move any float32 weight leaves the validation loss exactly
    where it was: with patience 1, training stops after the second epoch of ten; without it, all
    ten run."""
    from training.run import Experiment

    frozen = Hyperparameters(learning_rate=1e-12, epochs=10, batch_size=16, max_length=64, weight_decay=0.0)
    experiment = Experiment(chat_release, "causal-lm", str(tiny_gpt2), tmp_path, TrainConfig(generation_samples=0))
    patient, _ = experiment.train_once(frozen.model_copy(update={"early_stopping_patience": 1}), tmp_path / "a")
    assert patient.state.epoch == 2
    tireless, _ = experiment.train_once(frozen, tmp_path / "b")
    assert tireless.state.epoch == 10


def test_train_and_ablate_through_the_command_line(banking_release, tmp_path):
    """The CLI's ``train`` and ``ablate`` end to end, with a few optimizer steps (wiring, not learning)."""
    import yaml
    from cli import run_cli

    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"hyperparameters": {"max_steps": 3, "batch_size": 16, "max_length": 32}}))
    trained = run_cli("train", str(banking_release), "--out", str(tmp_path / "run"), "--config", str(config))
    assert trained.returncode == 0, trained.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["test_evaluations"] == 1 and 0 <= report["test"]["metrics"]["accuracy"] <= 1
    assert report["hyperparameters"]["max_steps"] == 3
    ablated = run_cli(
        "ablate", str(banking_release), "--out", str(tmp_path / "ab"), "--config", str(config), "--seeds", "1,2"
    )
    assert ablated.returncode == 0, ablated.stderr[-2000:]
    ablation = json.loads((tmp_path / "ab" / "ablation.json").read_text())
    assert ablation["seeds"] == [1, 2] and len(ablation["runs"]) == 2
    assert "| accuracy |" in (tmp_path / "ab" / "ablation.md").read_text()


def test_a_hub_model_offline_fails_naming_it(banking_release, tmp_path, monkeypatch):
    from corpusmill.models import ModelUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="bert-base-uncased: not a local directory"):
        train(banking_release, "classification", "bert-base-uncased", tmp_path / "x", TrainConfig())


@pytest.fixture(scope="module")
def domain_release(tmp_path_factory) -> Path:
    """A help centre's pages as plain text (the domain's documents) beside its chats."""
    directory = tmp_path_factory.mktemp("domain")
    things = ("card", "pin", "password", "account", "address", "parcel", "locker", "refund")
    actions = ("reset", "change", "lock", "find", "renew", "update", "check", "view")
    pages = [  # each labelled with what it is about: a classification task for generative multi-task runs
        {
            "text": f"To {a} your {b}, open the app and go to Settings. Then {a} the {b} and confirm.",
            "about": "access" if b in ("card", "pin", "password", "account") else "delivery",
        }
        for a in actions
        for b in things
    ]
    chats = [
        {
            "messages": [
                {"role": "user", "content": f"How do I {a} my {b}?"},
                {"role": "assistant", "content": f"Open the app and {a} the {b} in Settings."},
            ]
        }
        for a in actions
        for b in things
    ]
    (directory / "pages.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pages))
    (directory / "chats.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    from conftest import write_config

    config = write_config(
        directory,
        sources=[
            {"type": "jsonl", "path": "pages.jsonl", "text": "text", "label": "about", "dataset": "pages"},
            {"type": "jsonl", "path": "chats.jsonl", "messages": "messages", "dataset": "chats"},
        ],
        release={"name": "domain", "version": "1"},
    )
    return LocalExecutor(load_config(config), workers=1).build().release_dir


def test_domain_text_pretraining_then_a_chat_run_from_it_with_the_comparison(domain_release, tiny_gpt2, tmp_path):
    """Continued pre-training on the domain's plain text lowers perplexity on held-back domain
    text; a chat run starts from it (the chain in its report) and ``ablate --init-from`` compares
    base → chat with base → domain text → chat on the same test split."""
    from training import ablate_init

    hp = Hyperparameters(learning_rate=3e-3, epochs=6, batch_size=8, max_length=64, seed=1)
    domain = train(
        domain_release,
        "causal-lm",
        str(tiny_gpt2),
        tmp_path / "domain",
        TrainConfig(hyperparameters=hp, text_field="text", generation_samples=0),
    )
    assert domain["test"]["metrics"]["perplexity"] < domain["base"]["metrics"]["perplexity"] / 2  # held-back pages
    chat_config = TrainConfig(
        hyperparameters=hp.model_copy(update={"epochs": 2}), text_field="messages", generation_samples=2
    )
    chat = train(domain_release, "causal-lm", None, tmp_path / "chat", chat_config, init_from=tmp_path / "domain")
    assert chat["base_model"] == str(tiny_gpt2) and chat["init_from"]["run"] == str(tmp_path / "domain")
    assert chat["init_from"]["task"] == "causal-lm"
    comparison = ablate_init(
        domain_release, "causal-lm", None, tmp_path / "compare", chat_config, [1], tmp_path / "domain"
    )
    run = comparison["runs"][0]
    assert {"perplexity", "chrf"} <= set(run["init"]) & set(run["base"])
    assert run["init"]["perplexity"] != run["base"]["perplexity"]  # different starting weights, same test split
    summary = comparison["summary"]["perplexity"]
    assert summary["mean_difference"] == pytest.approx(run["init"]["perplexity"] - run["base"]["perplexity"], abs=1e-5)
    assert "| perplexity |" in (tmp_path / "compare" / "ablation.md").read_text()


def test_init_from_refuses_a_run_of_another_kind_or_model(banking_release, chat_release, tiny_gpt2, tmp_path):
    from corpusmill.errors import InputError

    quick = TrainConfig(hyperparameters=Hyperparameters(max_steps=1, batch_size=8, max_length=64), generation_samples=0)
    train(chat_release, "causal-lm", str(tiny_gpt2), tmp_path / "lm", quick.model_copy(update={"compare_base": False}))
    with pytest.raises(InputError, match="a causal-lm run cannot start a classification run"):
        train(banking_release, "classification", None, tmp_path / "x", quick, init_from=tmp_path / "lm")
    with pytest.raises(InputError, match=r"the run was trained from .*; --model 'smollm2' names another model"):
        train(chat_release, "causal-lm", "smollm2", tmp_path / "y", quick, init_from=tmp_path / "lm")
    with pytest.raises(InputError, match="not a finished corpusmill training run"):
        train(chat_release, "causal-lm", None, tmp_path / "z", quick, init_from=tmp_path)


def test_generative_multi_task_trains_classification_as_instructions_beside_chats_and_scores_both(
    domain_release, tiny_gpt2, tmp_path
):
    from training.run import Experiment

    config = TrainConfig(
        hyperparameters=Hyperparameters(learning_rate=3e-3, epochs=2, batch_size=8, max_length=96, seed=1),
        text_field="messages",
        tasks={"topic": TaskSpec(column="label", weight=0.5, prompt="Topic ({labels})? {text}")},
        generation_samples=2,
    )
    experiment = Experiment(domain_release, "causal-lm", str(tiny_gpt2), tmp_path / "x", config)
    chats = [r for r in experiment.task.rows["train"] if r["messages"]]
    assert len(chats) == len(experiment.task.rows["train"])  # the pages are not plain LM text here
    labelled = experiment.task.instructions.examples("train", "topic")
    instructions = experiment.task.instructions.training_chats(1)
    assert len(instructions) == round(0.5 * len(labelled))  # sampling weight 0.5
    prompt = instructions[0]["messages"][0]["content"]
    assert prompt.startswith("Topic (access, delivery)? To ")
    assert instructions[0]["messages"][1]["content"] in experiment.task.instructions.labels["topic"]
    assert len(experiment.task.dataset("train")) == len(chats) + len(instructions)
    assert len(experiment.task.dataset("validation")) == sum(1 for r in experiment.task.rows["validation"])

    report = train(domain_release, "causal-lm", str(tiny_gpt2), tmp_path / "run", config)
    for scored in (report["test"]["metrics"], report["base"]["metrics"]):
        assert 0 <= scored["topic_accuracy"] <= 1 and 0 <= scored["topic_macro_f1"] <= 1
        assert {"perplexity", "chrf"} <= set(scored)  # the chats' own metrics beside the task's
    answers = report["test"]["task_answers"]["topic"]
    assert answers and {"answer", "expected"} <= set(answers[0])


def test_generative_ablate_tasks_trains_each_task_and_the_chats_alone_and_together(domain_release, tiny_gpt2, tmp_path):
    from training import ablate_tasks

    config = TrainConfig(
        hyperparameters=Hyperparameters(learning_rate=3e-3, max_steps=3, batch_size=8, max_length=96, seed=1),
        text_field="messages",
        tasks={"topic": TaskSpec(column="label", prompt="Topic ({labels})? {text}")},
        generation_samples=2,
    )
    report = ablate_tasks(domain_release, "causal-lm", str(tiny_gpt2), tmp_path / "ab", config, [1])
    run = report["runs"][0]
    assert set(run) == {"seed", "together", "topic", "chat"}
    assert "topic_accuracy" in run["together"] and "topic_accuracy" in run["topic"]
    assert "topic_accuracy" not in run["chat"]  # the chats alone: no instruction turns
    assert set(report["summary"]) == {"topic", "chat"}
    assert {"perplexity", "chrf"} <= set(report["summary"]["chat"])
    table = (tmp_path / "ab" / "ablation.md").read_text()
    assert "| topic | accuracy |" in table and "| chat | perplexity |" in table
