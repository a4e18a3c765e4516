"""The training report: report.json, report.md, training curves, the confusion matrix, and for
chat models the base model against the tuned model on the same test prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from corpusmill.io import write_json


def plot_curves(history: list[dict[str, Any]], metric: str, path: Path) -> str:
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "eval_loss" not in h]
    evals = [(h["step"], h.get(f"eval_{metric}", h.get("eval_loss"))) for h in history if "eval_loss" in h]
    fig, left = plt.subplots(figsize=(7, 3.5), dpi=100)
    if train:
        left.plot(*zip(*train, strict=True), label="train loss", color="tab:blue")
    if evals:
        left.plot(
            [s for s, _ in evals],
            [h["eval_loss"] for h in history if "eval_loss" in h],
            "o-",
            label="validation loss",
            color="tab:orange",
        )
    left.set_xlabel("step")
    left.set_ylabel("loss")
    if evals and metric not in ("loss", "perplexity"):
        right = left.twinx()
        right.plot(*zip(*evals, strict=True), "s--", color="tab:green", label=f"validation {metric}")
        right.set_ylabel(metric)
        right.legend(loc="center right")
    left.legend(loc="upper right")
    left.set_title("Training curves")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path.name


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path) -> str:
    size = max(4, 0.35 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 20:
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                if value:
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=7)
    ax.set_title("Confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path.name


LOWER_IS_BETTER = frozenset({"loss", "perplexity"})


def plot_base_vs_tuned(base: dict[str, float], tuned: dict[str, float], path: Path) -> str:
    """One bar pair per shared metric; each pair scaled to its larger value (units differ)."""
    metrics = [m for m in tuned if m in base and m != "loss" and max(abs(base[m]), abs(tuned[m])) > 0]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(metrics)), 3.5), dpi=100)
    width = 0.38
    for offset, (name, values, colour) in enumerate((("base", base, "#9aa5b1"), ("tuned", tuned, "#2b6cb0"))):
        scaled = [values[m] / max(abs(base[m]), abs(tuned[m])) for m in metrics]
        bars = ax.bar(
            [i + (offset - 0.5) * width for i in range(len(metrics))], scaled, width, label=name, color=colour
        )
        for bar, metric in zip(bars, metrics, strict=True):
            ax.annotate(
                f"{values[metric]:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", fontsize=7
            )
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(
        [f"{m}\n({'lower' if m in LOWER_IS_BETTER else 'higher'} is better)" for m in metrics], fontsize=7
    )
    ax.set_yticks([])
    ax.set_title("Base vs tuned model on the test split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path.name


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(c) for c in row) + " |" for row in rows
    ]


def write_report(out: Path, report: dict[str, Any]) -> None:
    write_json(out / "report.json", report)
    objective = report["objective"]
    lines = [
        f"# Training report: {report['task']} on {report['release']['name']} {report['release']['version']}",
        "",
        f"Base model `{report['base_model']}`; release manifest sha256 `{report['release']['manifest_sha256']}`.",
        *_chain_lines(report.get("init_from")),
        f"Objective: {objective['direction']} validation `{objective['metric']}`; the test split was evaluated "
        f"{report['test_evaluations']} time(s), after the search.",
        "",
        "## Test",
        "",
        *_table(["metric", "value"], [[k, round(v, 4)] for k, v in report["test"]["metrics"].items()]),
        "",
        "## Chosen hyperparameters",
        "",
        *_table(["name", "value"], [[k, v] for k, v in report["hyperparameters"].items()]),
        "",
        "## Trials (validation)",
        "",
    ]
    names = sorted(
        {
            k
            for t in report["search"]["trials"]
            for k in t["hyperparameters"]
            if len({str(x["hyperparameters"][k]) for x in report["search"]["trials"]}) > 1
        }
    )
    lines += _table(
        [*names, objective["metric"], "seconds"],
        [
            [*(t["hyperparameters"][n] for n in names), round(t["validation"][objective["metric"]], 4), t["seconds"]]
            for t in report["search"]["trials"]
        ],
    )
    lines += ["", f"![Training curves]({report['plots']['curves']})", ""]
    if "per_class" in report["test"]:
        lines += [
            "## Per class (test)",
            "",
            *_table(
                ["label", "precision", "recall", "f1", "support"],
                [
                    [label, v["precision"], v["recall"], v["f1"], v["support"]]
                    for label, v in report["test"]["per_class"].items()
                ],
            ),
            "",
        ]
    if "confusion_matrix" in report["plots"]:
        lines += [f"![Confusion matrix]({report['plots']['confusion_matrix']})", ""]
    for name, task in report["test"].get("tasks", {}).items():  # a multi-task run: each task's own
        lines += [
            f"## Task `{name}` (test, {task['records']} records with its label)",
            "",
            *_table(
                ["label", "precision", "recall", "f1", "support"],
                [[label, v["precision"], v["recall"], v["f1"], v["support"]] for label, v in task["per_class"].items()],
            ),
            "",
        ]
        if f"confusion_matrix_{name}" in report["plots"]:
            lines += [f"![Confusion matrix of {name}]({report['plots'][f'confusion_matrix_{name}']})", ""]
    if report.get("base"):
        base, tuned = report["base"]["metrics"], report["test"]["metrics"]
        lines += [
            "## What fine-tuning bought: base vs tuned (test)",
            "",
            "The same test split and the same prompts, answered greedily by each model.",
            "",
            *_table(
                ["metric", "base", "tuned", "change"],
                [[m, round(base[m], 4), round(tuned[m], 4), f"{tuned[m] - base[m]:+.4f}"] for m in tuned if m in base],
            ),
            "",
            f"![Base vs tuned]({report['plots']['base_vs_tuned']})",
            "",
        ]
    if report.get("examples"):
        lines += [
            "## Example answers (test)",
            "",
            *_table(
                ["prompt", "reference", "base model", "tuned model"],
                [
                    [_cell(e["prompt"]), _cell(e["reference"]), _cell(e["base"]), _cell(e["tuned"])]
                    for e in report["examples"][:5]
                ],
            ),
            "",
        ]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")


def _chain_lines(init: dict[str, Any] | None) -> list[str]:
    """Where the weights came from, run by run back to the base model."""
    lines = []
    while init:
        release = init.get("release") or {}
        lines.append(
            f"Started from run `{init['run']}` ({init['task']} on {release.get('name')} {release.get('version')}, "
            f"release manifest sha256 `{release.get('manifest_sha256')}`; report sha256 `{init['report_sha256']}`)."
        )
        init = init.get("init_from")
    return lines


def _cell(text: str, limit: int = 200) -> str:
    """Text that fits a Markdown table cell."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
