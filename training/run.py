"""Train, search on validation, evaluate on test once, report; and ablate augmentation.

The test split is loaded into the task but only :func:`evaluate_test` reads it, after the search
has chosen; every trial is scored on validation with the declared objective and direction.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpusmill.errors import InputError
from corpusmill.io import sha256_file, write_json
from corpusmill.models import MINILM
from training.config import DEFAULT_OBJECTIVES, Hyperparameters, Objective, SearchSpace, TaskSpec, TrainConfig
from training.evaluation import answer_scores, chat_prompts, generate_answers
from training.models import check_kind, resolve_base_model
from training.report import plot_base_vs_tuned, plot_confusion, plot_curves, write_report
from training.tasks import TASKS, perplexity, to_jsonable
from training.transfer import EarlierRun


@dataclass
class Trial:
    hyperparameters: Hyperparameters
    validation: dict[str, float]
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0
    """Training tokens that entered the model (padding excluded)."""
    train_seconds: float = 0.0
    """Time inside the training loop alone (``seconds`` also counts loading and validation)."""


PEFT_TASK_TYPES = {"causal-lm": "CAUSAL_LM", "classification": "SEQ_CLS"}
"""peft's name for each task (``SEQ_CLS`` also keeps the new classifier head trainable)."""


def with_lora(model: Any, task: str, hp: Hyperparameters, target_modules: list[str] | None) -> Any:
    """The model wrapped in LoRA adapters (peft); only the adapters train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=target_modules or "all-linear",
        task_type=PEFT_TASK_TYPES[task],
    )
    return get_peft_model(model, config)


def load_release(release_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The release's splits (through its card's ``configs``) and its manifest."""
    import datasets

    manifest_path = release_dir / "manifest.json"
    if not manifest_path.exists():
        raise InputError(str(release_dir), "not a corpusmill release (no manifest.json)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    loaded = datasets.load_dataset(str(release_dir))
    missing = [s for s in ("train", "validation", "test") if s not in loaded]
    if missing:
        raise InputError(str(release_dir), f"release has no {missing[0]!r} split")
    return {name: loaded[name] for name in loaded}, manifest


class Experiment:
    """One release, one task, one base model (or an earlier run's weights: ``init_from``):
    trials on validation, one test evaluation."""

    def __init__(
        self,
        release_dir: Path,
        task: str,
        model: str | None,
        out: Path,
        config: TrainConfig,
        init_from: Path | None = None,
    ) -> None:
        import datasets
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()

        self.release_dir, self.out, self.config = release_dir, out, config
        self.init = EarlierRun(init_from, task, model) if init_from is not None else None
        model = model or (self.init.base_model if self.init else None) or MINILM
        self.model_name = model
        self.model_path = resolve_base_model(model)
        check_kind(model, self.model_path, "classification" if task == "multi-task" else task)
        splits, self.manifest = load_release(release_dir)
        hp = config.hyperparameters
        if task == "multi-task":
            from training.multitask import MultiTaskTask

            if config.method == "lora":
                raise InputError("method", "multi-task trains the shared encoder in full; use method: full")
            tasks = config.tasks or {"label": TaskSpec()}
            self.task: Any = MultiTaskTask(self.model_path, splits, hp.max_length, tasks, config.loss_weighting)
        else:
            self.task = TASKS[task](self.model_path, splits, hp.max_length)
        if task == "causal-lm" and config.tasks:  # generative multi-task: before use_only drops text rows
            from training.instructions import InstructionTasks

            try:
                self.task.instructions = InstructionTasks(config.tasks, self.task.rows)
            except ValueError as exc:
                raise InputError("tasks", str(exc)) from None
            self.task.seed = hp.seed
        if task == "causal-lm" and config.text_field != "auto":
            self.task.use_only(config.text_field)
        self.weights = self.init.weights(self.model_path, out / "init-model") if self.init else None
        """Where training starts: the earlier run's weights, or ``None`` for the base model."""
        metric, direction = DEFAULT_OBJECTIVES[task]
        self.objective = config.objective or Objective(metric=metric, direction=direction)
        self.device_is_cuda = torch.cuda.is_available()
        self.test_evaluations = 0
        self.embedder: Any = None

    # -- one training run --------------------------------------------------------------------

    def _trainer(self, hp: Hyperparameters, train: Any, validation: Any, workdir: Path) -> Any:
        from transformers import EarlyStoppingCallback, Trainer, TrainingArguments, set_seed

        from training.progress import RichProgress

        set_seed(hp.seed)
        metric = "loss" if self.objective.metric == "perplexity" else self.objective.metric
        args = TrainingArguments(
            output_dir=str(workdir),
            learning_rate=hp.learning_rate,
            num_train_epochs=hp.epochs,
            max_steps=hp.max_steps or -1,
            include_num_input_tokens_seen="non_padding",
            per_device_train_batch_size=hp.batch_size,
            per_device_eval_batch_size=hp.batch_size * 2,
            weight_decay=hp.weight_decay,
            warmup_steps=hp.warmup_ratio,
            lr_scheduler_type=hp.scheduler,
            gradient_accumulation_steps=hp.gradient_accumulation,
            seed=hp.seed,
            data_seed=hp.seed,
            eval_strategy="epoch",
            save_strategy="epoch" if hp.early_stopping_patience else "no",
            load_best_model_at_end=bool(hp.early_stopping_patience),
            metric_for_best_model=metric,
            greater_is_better=self.objective.direction == "maximize",
            save_total_limit=1,
            logging_steps=5,
            report_to="none",
            disable_tqdm=True,
            use_cpu=not self.device_is_cuda,
            bf16=self.device_is_cuda,
            dataloader_num_workers=0,
        )
        callbacks: list[Any] = [RichProgress(f"training ({self.config.method})", self.objective.metric)]
        if hp.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(hp.early_stopping_patience))
        model = self.task.model(hp.dropout, self.weights)
        if self.config.method == "lora":
            model = with_lora(model, self.task.name, hp, self.config.target_modules)
        return Trainer(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=validation,
            data_collator=self.task.collator(),
            compute_metrics=self.task.metrics,
            preprocess_logits_for_metrics=self.task.reduce_logits,
            callbacks=callbacks,
        )

    def _scored(self, metrics: dict[str, float]) -> dict[str, float]:
        out = {
            key.removeprefix("eval_"): float(value)
            for key, value in metrics.items()
            if isinstance(value, (int, float)) and not key.endswith(("_runtime", "per_second", "_time"))
        }
        if "loss" in out and self.task.name == "causal-lm":
            out["perplexity"] = perplexity(out["loss"])
        return out

    def train_once(self, hp: Hyperparameters, workdir: Path, drop_augmented: bool = False) -> tuple[Any, Trial]:
        started = time.perf_counter()
        train = self.task.dataset("train", drop_augmented)
        validation = self.task.dataset("validation")
        trainer = self._trainer(hp, train, validation, workdir)
        train_seconds = trainer.train().metrics["train_runtime"]
        scores = self._scored(trainer.evaluate())
        if self.objective.metric not in scores:
            raise InputError(
                "objective", f"metric {self.objective.metric!r} is not measured (have: {', '.join(scores)})"
            )
        trial = Trial(hp, scores, round(time.perf_counter() - started, 2), trainer.state.log_history)
        trial.tokens = int(trainer.state.num_input_tokens_seen)
        trial.train_seconds = float(train_seconds)
        return trainer, trial

    # -- search, test, report ------------------------------------------------------------------

    def search(self, space: SearchSpace | None) -> tuple[Trial, list[Trial]]:
        """Every candidate trained on train and scored on validation; the best is kept in ``out/model``."""
        if space is not None and space.objective is not None:
            self.objective = space.objective
        candidates = space.candidates(self.config.hyperparameters) if space else [self.config.hyperparameters]
        best: Trial | None = None
        trials: list[Trial] = []
        for index, hp in enumerate(candidates):
            trainer, trial = self.train_once(hp, self.out / "runs" / f"trial-{index}")
            trials.append(trial)
            value = trial.validation[self.objective.metric]
            if best is None or self.objective.better(value, best.validation[self.objective.metric]):
                best = trial
                self.save(trainer, self.out / "model")
            shutil.rmtree(self.out / "runs" / f"trial-{index}", ignore_errors=True)
        assert best is not None
        return best, trials

    def save(self, trainer: Any, model_dir: Path) -> None:
        """The trained model and its tokenizer in ``model_dir`` (a multi-task model saves its
        encoder, heads and tasks itself: it is not a transformers model)."""
        if self.task.name == "multi-task":
            trainer.model.save(model_dir)
        else:
            trainer.save_model(str(model_dir))
        self.task.tokenizer.save_pretrained(str(model_dir))

    def load_trained(self, model_dir: Path) -> Any:
        """The model a run saved: LoRA adapters over the weights it started from, or a full model."""
        import transformers

        if self.task.name == "multi-task":
            return self.task.load(model_dir)
        auto = getattr(transformers, self.task.auto_class)
        if (model_dir / "adapter_config.json").is_file():
            from peft import PeftModel

            return PeftModel.from_pretrained(auto.from_pretrained(self.weights or self.model_path), str(model_dir))
        return auto.from_pretrained(str(model_dir))

    def evaluate(self, model: Any, hp: Hyperparameters) -> dict[str, Any]:
        """``model`` on the test split: the task's metrics, and for chat models the answers to
        the test prompts scored against the references."""
        from transformers import Trainer, TrainingArguments

        args = TrainingArguments(
            output_dir=str(self.out / "runs" / "test"),
            per_device_eval_batch_size=hp.batch_size * 2,
            report_to="none",
            disable_tqdm=True,
            use_cpu=not self.device_is_cuda,
        )
        trainer = Trainer(
            model=model,
            args=args,
            data_collator=self.task.collator(),
            compute_metrics=self.task.metrics,
            preprocess_logits_for_metrics=self.task.reduce_logits,
        )
        prediction = trainer.predict(self.task.dataset("test"))
        shutil.rmtree(self.out / "runs", ignore_errors=True)
        scores = self._scored({k.replace("test_", "eval_"): v for k, v in prediction.metrics.items()})
        details = self.task.details(prediction)
        prompts = chat_prompts(self.task.rows["test"], self.config.generation_samples)
        if self.task.name == "causal-lm" and prompts and self.config.generation_samples != 0:
            import torch

            from corpusmill.embeddings import MiniLM

            torch.manual_seed(hp.seed)
            answers = generate_answers(
                model, self.task.tokenizer, [p.messages for p in prompts], self.config.max_new_tokens
            )
            self.embedder = self.embedder or MiniLM()
            scores.update(answer_scores(answers, [p.reference for p in prompts], self.embedder))
            details["answers"] = answers
        if self.task.name == "causal-lm" and self.task.instructions is not None:
            task_scores, task_answers = self.task.instructions.score(model, self.task.tokenizer, hp.seed)
            scores.update(task_scores)
            details["task_answers"] = task_answers
        return {"metrics": scores, **details}

    def evaluate_test(self, model_dir: Path, hp: Hyperparameters) -> dict[str, Any]:
        """The one look at the test split for the chosen model."""
        self.test_evaluations += 1
        return self.evaluate(self.load_trained(model_dir), hp)

    def evaluate_base(self, hp: Hyperparameters) -> dict[str, Any]:
        """The base model on the same test split and prompts: what fine-tuning is measured against."""
        import transformers

        model = getattr(transformers, self.task.auto_class).from_pretrained(self.model_path)
        model.config.pad_token_id = self.task.tokenizer.pad_token_id
        return self.evaluate(model, hp)

    def merge(self, model_dir: Path, out: Path) -> None:
        """LoRA adapters folded into the base weights: a model plain ``from_pretrained`` loads."""
        merged = self.load_trained(model_dir).merge_and_unload()
        merged.save_pretrained(str(out))
        self.task.tokenizer.save_pretrained(str(out))

    def chain(self) -> dict[str, Any] | None:
        """Which run this one started from, and what that run was trained on."""
        return self.init.to_dict() if self.init else None

    def release_identity(self) -> dict[str, Any]:
        return {
            "dir": str(self.release_dir),
            "name": self.manifest.get("name"),
            "version": self.manifest.get("version"),
            "build_key": self.manifest.get("build_key"),
            "manifest_sha256": sha256_file(self.release_dir / "manifest.json"),
        }


def train(
    release_dir: Path,
    task: str,
    model: str | None,
    out: Path,
    config: TrainConfig,
    space: SearchSpace | None = None,
    merge: bool = False,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Search on validation, keep the best model in ``out/model`` (LoRA: the adapter; ``merge``:
    also ``out/merged``), evaluate it on test once, and for chat models the base model beside it.
    ``init_from``: start from that earlier run's weights instead of the base model's."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    experiment = Experiment(release_dir, task, model, out, config, init_from)
    best, trials = experiment.search(space)
    test = experiment.evaluate_test(out / "model", best.hyperparameters)
    if merge and config.method == "lora":
        experiment.merge(out / "model", out / "merged")
    base = experiment.evaluate_base(best.hyperparameters) if task == "causal-lm" and config.compare_base else None
    plots = {"curves": plot_curves(best.history, experiment.objective.metric, out / "curves.png")}
    if base is not None:
        plots["base_vs_tuned"] = plot_base_vs_tuned(base["metrics"], test["metrics"], out / "base_vs_tuned.png")
    if "confusion_matrix" in test:
        plots["confusion_matrix"] = plot_confusion(
            test["confusion_matrix"], experiment.task.labels, out / "confusion_matrix.png"
        )
    for name, details in test.get("tasks", {}).items():  # a multi-task run: one matrix per task
        if "confusion_matrix" in details:
            plots[f"confusion_matrix_{name}"] = plot_confusion(
                details["confusion_matrix"], details["labels"], out / f"confusion_matrix_{name}.png"
            )
    report = to_jsonable(
        {
            "task": task,
            "base_model": experiment.model_name,
            "init_from": experiment.chain(),
            "release": experiment.release_identity(),
            "objective": experiment.objective.model_dump(),
            "search": {
                "strategy": space.strategy if space else "none",
                "evaluated_on": "validation",
                "trials": [
                    {
                        "hyperparameters": t.hyperparameters.model_dump(),
                        "validation": t.validation,
                        "seconds": t.seconds,
                    }
                    for t in trials
                ],
            },
            "method": config.method,
            "merged": bool(merge and config.method == "lora"),
            "hyperparameters": best.hyperparameters.model_dump(),
            "training": {
                "tokens": best.tokens,
                "seconds": round(best.train_seconds, 2),
                "tokens_per_second": round(best.tokens / best.train_seconds, 1) if best.train_seconds else 0.0,
                "losses": [h["loss"] for h in best.history if "loss" in h and "eval_loss" not in h],
            },
            "validation": best.validation,
            "test": test,
            "base": base,
            "examples": _examples(experiment, base, test),
            "test_evaluations": experiment.test_evaluations,
            "labels": experiment.task.labels,
            "plots": plots,
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    write_report(out, report)
    return report


def _examples(experiment: Experiment, base: dict[str, Any] | None, test: dict[str, Any]) -> list[dict[str, str]]:
    """Test prompts with the reference, the base model's and the tuned model's answers."""
    if base is None or "answers" not in test:
        return []
    prompts = chat_prompts(experiment.task.rows["test"], experiment.config.generation_samples)
    return [
        {"prompt": p.messages[-1]["content"], "reference": p.reference, "base": b, "tuned": t}
        for p, b, t in zip(prompts, base["answers"], test["answers"], strict=True)
    ]


def ablate(
    release_dir: Path, task: str, model: str | None, out: Path, config: TrainConfig, seeds: list[int]
) -> dict[str, Any]:
    """The same configuration with and without the augmented training records, over seeds."""
    out.mkdir(parents=True, exist_ok=True)
    experiment = Experiment(release_dir, task, model, out, config)
    augmented = sum(1 for r in experiment.task.rows["train"] if r.get("parent_id"))
    if not augmented:
        raise InputError(str(release_dir), "the release has no augmented training records to ablate")
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        hp = config.hyperparameters.model_copy(update={"seed": seed})
        runs.append(
            {"seed": seed}
            | {
                arm: _tested(experiment, hp, out, f"{arm}-{seed}", drop)
                for arm, drop in (("with", False), ("without", True))
            }
        )
    summary = _summary(runs, "with", "without")
    report = to_jsonable(
        {
            "release": experiment.release_identity(),
            "task": task,
            "base_model": experiment.model_name,
            "augmented_train_records": augmented,
            "train_records": {
                "with": len(experiment.task.dataset("train")),
                "without": len(experiment.task.dataset("train", drop_augmented=True)),
            },
            "seeds": seeds,
            "runs": runs,
            "summary": summary,
        }
    )
    write_json(out / "ablation.json", report)
    title = "# Ablation: augmented training records"
    intro = f"{augmented} augmented training records; {len(seeds)} seeds; test metrics, with minus without."
    _write_two_arm_table(out / "ablation.md", title, intro, summary, ("with", "without"))
    return report


def ablate_init(
    release_dir: Path,
    task: str,
    model: str | None,
    out: Path,
    config: TrainConfig,
    seeds: list[int],
    init_from: Path,
) -> dict[str, Any]:
    """Transfer, measured: the same fine-tune started from the base model and from an earlier
    run's weights (a model of another domain, or a domain-text run before a chat run), each
    seed on the same test split."""
    out.mkdir(parents=True, exist_ok=True)
    arms = {"init": Experiment(release_dir, task, model, out, config, init_from)}
    arms["base"] = Experiment(release_dir, task, arms["init"].model_name, out, config)
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        hp = config.hyperparameters.model_copy(update={"seed": seed})
        runs.append(
            {"seed": seed} | {arm: _tested(experiment, hp, out, f"{arm}-{seed}") for arm, experiment in arms.items()}
        )
    summary = _summary(runs, "init", "base")
    chain = arms["init"].chain()
    report = to_jsonable(
        {
            "release": arms["base"].release_identity(),
            "task": task,
            "base_model": arms["base"].model_name,
            "init_from": chain,
            "seeds": seeds,
            "runs": runs,
            "summary": summary,
        }
    )
    write_json(out / "ablation.json", report)
    title = f"# Transfer: starting from run `{init_from}` against the base model `{arms['base'].model_name}`"
    intro = f"{len(seeds)} seeds; the same test split; test metrics, from the run minus from the base model."
    _write_two_arm_table(out / "ablation.md", title, intro, summary, ("init", "base"))
    return report


def ablate_tasks(
    release_dir: Path, task: str, model: str | None, out: Path, config: TrainConfig, seeds: list[int]
) -> dict[str, Any]:
    """Multi-task learning, measured: every task trained alone and all of them together, with
    the same model, hyperparameters and budget, each seed on the same test split. For a causal
    LM (generative multi-task) the chats are one more task: "alone" they train without the
    instruction turns, and a classification task alone trains on its instruction turns only."""
    if len(config.tasks) < (1 if task == "causal-lm" else 2):
        raise InputError(
            "tasks", f"ablating tasks needs {'a task' if task == 'causal-lm' else 'two tasks'} in the config"
        )
    out.mkdir(parents=True, exist_ok=True)
    arms = {"together": Experiment(release_dir, task, model, out, config)}
    model = arms["together"].model_name
    for name, spec in config.tasks.items():
        alone = config.model_copy(update={"tasks": {name: spec.model_copy(update={"weight": 1.0})}})
        arms[name] = Experiment(release_dir, task, model, out, alone)
        if task == "causal-lm":
            arms[name].task.rows["train"] = []  # its instruction turns alone
    if task == "causal-lm":
        arms["chat"] = Experiment(release_dir, task, model, out, config.model_copy(update={"tasks": {}}))
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        hp = config.hyperparameters.model_copy(update={"seed": seed})
        runs.append(
            {"seed": seed} | {arm: _tested(experiment, hp, out, f"{arm}-{seed}") for arm, experiment in arms.items()}
        )
    summary: dict[str, dict[str, Any]] = {}
    for name in arms:
        if name == "together":
            continue
        pairs = [{"together": r["together"], "alone": r[name]} for r in runs]
        if name == "chat":  # the chats' own metrics, which both arms measure
            metrics = [m for m in CHAT_METRICS if m in runs[0]["together"] and m in runs[0]["chat"]]
        else:
            metrics = [f"{name}_accuracy", f"{name}_macro_f1"]
        summary[name] = _summary(pairs, "together", "alone", metrics)
    report = to_jsonable(
        {
            "release": arms["together"].release_identity(),
            "task": task,
            "base_model": model,
            "tasks": {name: spec.model_dump() for name, spec in config.tasks.items()},
            "loss_weighting": config.loss_weighting if task == "multi-task" else None,
            "seeds": seeds,
            "runs": runs,
            "summary": summary,
        }
    )
    write_json(out / "ablation.json", report)
    how = f"{config.loss_weighting} loss weights" if task == "multi-task" else "chats and instruction turns"
    lines = [
        "# Multi-task against single-task training",
        "",
        f"Each task alone and all {len(summary)} together ({how}), same model and budget; "
        f"{len(seeds)} seeds; test metrics, together minus alone.",
        "",
        "| task | metric | alone (mean ± sd) | together (mean ± sd) | difference (mean) | stdev |",
        "|---|---|---|---|---|---|",
    ]
    for name, metrics in summary.items():
        for metric, s in metrics.items():
            alone = f"{s['alone_mean']:.4f} ± {s['alone_stdev']:.4f}"
            together = f"{s['together_mean']:.4f} ± {s['together_stdev']:.4f}"
            lines.append(
                f"| {name} | {metric.removeprefix(name + '_')} | {alone} | {together} | "
                f"{s['mean_difference']:+.4f} | {s['stdev']:.4f} |"
            )
    (out / "ablation.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


CHAT_METRICS = ("perplexity", "next_token_accuracy", "chrf", "rouge_l", "minilm_cosine")
"""The chat metrics a generative multi-task ablation compares for the chats."""


def _tested(
    experiment: Experiment, hp: Hyperparameters, out: Path, name: str, drop_augmented: bool = False
) -> dict[str, float]:
    """One arm of an ablation: trained, saved, and scored on the test split."""
    trainer, _ = experiment.train_once(hp, out / "runs" / name, drop_augmented=drop_augmented)
    experiment.save(trainer, out / "runs" / f"{name}-model")
    return experiment.evaluate_test(out / "runs" / f"{name}-model", hp)["metrics"]


def _summary(
    runs: list[dict[str, Any]], first: str, second: str, metrics: list[str] | None = None
) -> dict[str, dict[str, float]]:
    """Per metric both arms' means and spreads over the seeds, and ``first`` minus ``second``."""
    shared = metrics or sorted(set(runs[0][first]) & set(runs[0][second]))
    summary = {}
    for metric in shared:
        diffs = [r[first][metric] - r[second][metric] for r in runs]
        entry = {"mean_difference": round(statistics.fmean(diffs), 6), "stdev": _stdev(diffs)}
        for arm in (first, second):
            values = [r[arm][metric] for r in runs]
            entry[f"{arm}_mean"] = round(statistics.fmean(values), 6)
            entry[f"{arm}_stdev"] = _stdev(values)
        summary[metric] = entry
    return summary


def _stdev(values: list[float]) -> float:
    return round(statistics.stdev(values), 6) if len(values) > 1 else 0.0


def _write_two_arm_table(
    path: Path, title: str, intro: str, summary: dict[str, dict[str, float]], arms: tuple[str, str]
) -> None:
    first, second = arms
    lines = [
        title,
        "",
        intro,
        "",
        f"| metric | {first} (mean ± sd) | {second} (mean ± sd) | difference (mean) | stdev |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {m} | {s[f'{first}_mean']:.4f} ± {s[f'{first}_stdev']:.4f} | {s[f'{second}_mean']:.4f} ± "
        f"{s[f'{second}_stdev']:.4f} | {s['mean_difference']:+.4f} | {s['stdev']:.4f} |"
        for m, s in summary.items()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
