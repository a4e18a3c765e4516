"""The release's dataset card: Hugging Face YAML front matter, datasheet sections, tables, plots."""

from __future__ import annotations

import json
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
from huggingface_hub import DatasetCardData

from corpusmill import __version__
from corpusmill.config import BuildConfig
from corpusmill.reports import SplitSummary, StepReport, markdown_table
from corpusmill.schema import parquet_class_labels
from corpusmill.tokens import TokenReport

MAX_LABELS_PLOTTED = 40
PNG_METADATA = {"Software": None}
"""No matplotlib version stamp, so plots are the same bytes on every run."""


def feature_yaml(arrow_type: pa.DataType) -> dict[str, Any]:
    """One column's type in the card's ``dataset_info.features`` form (what ``datasets`` reads)."""
    if pa.types.is_string(arrow_type):
        return {"dtype": "string"}
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        return {"dtype": str(arrow_type)}  # "int64", "bool": the names datasets uses
    if pa.types.is_list(arrow_type):
        inner = arrow_type.value_type
        if pa.types.is_struct(inner):
            return {"list": [{"name": f.name, **feature_yaml(f.type)} for f in inner]}
        return {"list": feature_yaml(inner)["dtype"]}
    if pa.types.is_struct(arrow_type):
        return {"struct": [{"name": f.name, **feature_yaml(f.type)} for f in arrow_type]}
    raise TypeError(f"no card type for {arrow_type}")


def _features(schema: pa.Schema) -> list[dict[str, Any]]:
    """Every column's card type; a label column of ``ClassLabel`` indices as ``class_label`` with
    its names (what ``datasets`` writes for one), so ``features["label"].names`` works."""
    names = parquet_class_labels(schema).get("label")
    features = []
    for field in schema:
        if field.name == "label" and names:
            class_label = {"class_label": {"names": {str(index): name for index, name in enumerate(names)}}}
            features.append(
                {"name": "label", **({"list": class_label} if pa.types.is_list(field.type) else {"dtype": class_label})}
            )
        else:
            features.append({"name": field.name, **feature_yaml(field.type)})
    return features


def size_category(total: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if total < limit:
            return name
    return "n>1M"


def front_matter(
    config: BuildConfig,
    summaries: dict[str, SplitSummary],
    schema: pa.Schema,
    configs: dict[str, dict[str, str]] | None = None,
) -> DatasetCardData:
    """The card's YAML header as ``huggingface_hub`` models it, so the Hub and ``datasets`` read
    the configs, features and split sizes it declares. ``configs`` are the configs beside the
    default one (config name → split → parquet file): ``text`` and ``chat`` for a release of
    both shapes, and each fine-tuning export (``load_dataset(path, "openai")``)."""
    total = sum(summary.records for summary in summaries.values())
    others = [
        {"config_name": name, "data_files": [{"split": split, "path": path} for split, path in files.items()]}
        for name, files in (configs or {}).items()
        if files
    ]
    return DatasetCardData(
        pretty_name=config.release.name,
        license=config.release.license,
        language=config.release.language,
        size_categories=[size_category(total)],
        task_categories=config.release.task_categories or None,
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": name, "path": f"data/{name}-*.parquet"} for name in summaries],
            },
            *others,
        ],
        dataset_info={
            "features": _features(schema),
            "splits": [
                {"name": name, "num_bytes": summary.nbytes, "num_examples": summary.records}
                for name, summary in summaries.items()
            ],
            "dataset_size": sum(summary.nbytes for summary in summaries.values()),
        },
    )


def _length_row(name: str, values: array[int]) -> list[Any]:
    if not values:
        return [name, 0, "–", "–", "–", "–", "–"]
    ordered = np.sort(np.frombuffer(values, dtype=np.uint32))

    def pct(q: float) -> int:
        return int(ordered[min(len(ordered) - 1, int(q * len(ordered)))])

    median = int(np.median(ordered))
    return [name, len(values), int(ordered[0]), pct(0.05), median, pct(0.95), int(ordered[-1])]


def render_card(
    config: BuildConfig,
    summaries: dict[str, SplitSummary],
    schema: pa.Schema,
    steps: list[StepReport],
    accounting: dict[str, Any],
    plots: dict[str, str],
    configs: dict[str, dict[str, str]] | None = None,
    tokens: dict[str, Any] | None = None,
) -> str:
    """The card: generic sections from the counts, then each step's own section in pipeline order."""
    release = config.release
    total = sum(s.records for s in summaries.values())
    all_labels: Counter[str] = Counter()
    for summary in summaries.values():
        all_labels.update(summary.labels)
    datasets: Counter[str] = Counter()
    for summary in summaries.values():
        datasets.update(summary.datasets)

    parts = ["---", front_matter(config, summaries, schema, configs).to_yaml().rstrip(), "---", ""]
    parts += [f"# {release.name} {release.version}", ""]
    parts += [release.description or "A corpusmill release.", ""]
    parts += [
        "## Dataset summary",
        "",
        f"{total} records in {len(summaries)} splits, built by corpusmill {__version__} with seed {config.seed}. "
        f"{accounting['input_records']} records came in; {accounting['rejected_total']} were rejected with a "
        f"reason (see *Preprocessing*) and {accounting['augmented_records']} were added by augmentation.",
        "",
        "## Splits",
        "",
        markdown_table(
            ["split", "records", "share", "chat records", "augmented"],
            [
                [name, s.records, f"{s.records / total:.1%}" if total else "–", s.chat, s.augmented]
                for name, s in summaries.items()
            ],
        ),
        "",
        'Load it with `datasets.load_dataset("<this directory>")`; the `configs` block above maps each '
        "split to its parquet files. `jsonl/` holds the same records as JSON lines.",
        "",
        *(
            [
                'Text and chat records are also configs of their own, each with only its columns: `load_dataset("'
                '<this directory>", "chat")` gives rows of `messages` alone (what TRL\'s `SFTTrainer` takes), '
                '`"text"` the text records without the `messages` column.',
                "",
            ]
            if configs and "chat" in configs
            else []
        ),
        *_examples(summaries),
    ]
    if all_labels:
        names = list(summaries)
        rows = [
            [label, *[summaries[name].labels.get(label, 0) for name in names], count]
            for label, count in sorted(all_labels.items(), key=lambda item: (-item[1], item[0]))
        ]
        parts += ["## Label distribution", "", f"{len(all_labels)} labels.", ""]
        parts += [markdown_table(["label", *names, "all"], rows), ""]
        if "labels" in plots:
            parts += [f"![Label distribution per split]({plots['labels']})", ""]
    parts += ["## Text length", "", "Words per record (characters in the second table).", ""]
    parts += [
        markdown_table(
            ["split", "records", "min", "p5", "median", "p95", "max"],
            [_length_row(name, s.words) for name, s in summaries.items()],
        ),
        "",
        markdown_table(
            ["split", "records", "min", "p5", "median", "p95", "max"],
            [_length_row(name, s.chars) for name, s in summaries.items()],
        ),
        "",
        f"![Length histogram per split]({plots['lengths']})",
        "",
    ]
    parts += _token_section(tokens, plots) if tokens is not None else []
    parts += [step.card_section + "\n" for step in steps if step.card_section]
    parts += ["## Sources", "", markdown_table(["dataset", "records released"], sorted(datasets.items())), ""]
    step_rows = [
        [
            step.label,
            step.stats.total,
            step.stats.kept,
            step.stats.added,
            step.stats.dropped_total,
            ", ".join(f"{reason}: {n}" for reason, n in sorted(step.stats.dropped.items())) or "–",
        ]
        for step in steps
    ]
    parts += [
        "## Preprocessing",
        "",
        "Every step in order, with what it received, kept, added and dropped. Each dropped record is in "
        "`rejects/<step>.jsonl` with its reason.",
        "",
        markdown_table(["step", "in", "kept", "added", "dropped", "reasons"], step_rows),
        "",
    ]
    if config.release.exports:
        parts += [
            "## Fine-tuning exports",
            "",
            "Chat records are also written as "
            + ", ".join(f"`exports/{fmt}/<split>.jsonl`" for fmt in config.release.exports)
            + " (OpenAI chat, ShareGPT, Alpaca), validated by the same rules as the importers; "
            "`manifest.json` counts what each file holds and what was skipped and why. The same rows are in "
            "`exports/<format>/<split>.parquet`, and each format is a config: "
            + ", ".join(f'`load_dataset("<this directory>", "{fmt}")`' for fmt in config.release.exports)
            + ".",
            "",
        ]
    parts += [
        "## Datasheet",
        "",
        "### Composition",
        "",
        "Each record has `id`, `text` (plain text) or `messages` (chat turns with `role` and `content`), "
        "`label` (none, a string, or a list for multi-label data), `group` (records sharing it are always "
        "in the same split), `split`, `source` (kind, uri, dataset, fetched_at), `meta` (a JSON object: "
        "scores and facts computed during cleaning), `parent_id` and `augmentation` (a JSON object) for "
        "records derived from another one.",
        "",
        "### Collection process",
        "",
        markdown_table(
            ["dataset", "type", "uri"],
            [
                [spec.dataset or config.dataset_name(i), spec.type, spec.step_params.get("path", "–")]
                for i, spec in enumerate(config.sources)
            ],
        ),
        "",
        "### Uses",
        "",
        f"Task categories: {', '.join(release.task_categories) or 'not declared'}. Train on `train`, choose "
        "hyperparameters on `validation`, report on `test` once.",
        "",
        "### Distribution and maintenance",
        "",
        f"License: {release.license}. `manifest.json` lists the sha256 of every file, the full build config and "
        "its hash, the library versions and the accounting of every record; `corpusmill release verify` "
        "re-checks them.",
        "",
    ]
    return "\n".join(parts)


EXAMPLE_CHARS = 300
"""A text or turn longer than this is cut in the card's examples."""


def _examples(summaries: dict[str, SplitSummary]) -> list[str]:
    """One record of each shape (text, chat) per split, as the Hub's viewer would show a row."""
    parts = []
    for name, summary in summaries.items():
        for shape, record in summary.examples.items():
            shown = {key: record[key] for key in ("id", "label", "group") if record.get(key) is not None}
            if record.get("text") is not None:
                shown["text"] = _cut(record["text"])
            else:
                shown["messages"] = [{"role": m["role"], "content": _cut(m["content"])} for m in record["messages"]]
            parts += [f"`{name}`, a {shape} record:", "", "```json", json.dumps(shown, ensure_ascii=False, indent=2)]
            parts += ["```", ""]
    return ["## Examples", "", *parts] if parts else []


def _cut(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


def plot_lengths(summaries: dict[str, SplitSummary], path: Path) -> str:
    series = {name: summary.words for name, summary in summaries.items()}
    return _histograms(series, "words per record", "Length distribution per split", path)


def plot_tokens(tokens: TokenReport, path: Path) -> str:
    series = {name: split.counts for name, split in tokens.splits.items()}
    return _histograms(series, f"tokens per record ({tokens.tokenizer})", "Token counts per split", path)


def _histograms(series: dict[str, array[int]], unit: str, title: str, path: Path) -> str:
    """One step histogram per split, each as shares of its records, on one axis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    longest = max((max(values) for values in series.values() if values), default=1)
    bins = min(50, max(5, longest))
    for name, values in series.items():
        if values:
            counts = np.frombuffer(values, dtype=np.uint32)
            ax.hist(
                counts,
                bins=bins,
                range=(0, longest),
                histtype="step",
                weights=np.full(len(counts), 1 / len(counts)),
                linewidth=1.5,
                label=f"{name} ({len(counts)})",
            )
    ax.set_xlabel(unit)
    ax.set_ylabel("share of records")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata=PNG_METADATA)
    plt.close(fig)
    return f"plots/{path.name}"


def _token_section(report: dict[str, Any], plots: dict[str, str]) -> list[str]:
    """Token counts per split (:meth:`TokenReport.to_dict`), and what a fine-tune must know before it starts."""
    how = (
        "chats rendered with its chat template"
        if report["chat_template"]
        else "chats as their turns joined by newlines"
    )
    rows = [
        [name, s["records"], s.get("min", "–"), s.get("median", "–"), s.get("p95", "–"), s.get("max", "–"), s["total"]]
        for name, s in report["splits"].items()
    ]
    parts = ["## Tokens", "", f"Counted with `{report['tokenizer']}` ({how}), as a fine-tune will read them.", ""]
    parts += [markdown_table(["split", "records", "min", "median", "p95", "max", "total"], rows), ""]
    train = report["splits"].get("train")
    if train:
        parts += [f"One epoch over `train` reads {train['total']:,} tokens (n epochs: n times that).", ""]
    over = sum(s["over_max_tokens"] for s in report["splits"].values())
    if report["max_tokens"] is not None:
        if over:
            parts += [
                f"> **Warning:** {over} records are longer than `max_tokens` ({report['max_tokens']}): a trainer "
                "truncates them or drops them. `manifest.json` names them (`tokens.over_max_tokens_listed`).",
                "",
            ]
        else:
            parts += [f"Every record fits in `max_tokens` ({report['max_tokens']}).", ""]
    silent = sum(s["chats_without_assistant"] for s in report["splits"].values())
    if silent:
        parts += [
            f"> **Warning:** {silent} chats have no assistant turn: a chat fine-tune learns nothing from them.",
            "",
        ]
    if "tokens" in plots:
        parts += [f"![Token counts per split]({plots['tokens']})", ""]
    return parts


def plot_labels(summaries: dict[str, SplitSummary], path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    totals: Counter[str] = Counter()
    for summary in summaries.values():
        totals.update(summary.labels)
    labels = [label for label, _ in sorted(totals.items(), key=lambda item: (-item[1], item[0]))][:MAX_LABELS_PLOTTED]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(labels) + 1)), dpi=100)
    height = 0.8 / max(1, len(summaries))
    for offset, (name, summary) in enumerate(summaries.items()):
        share = [summary.labels.get(label, 0) / max(1, summary.records) for label in labels]
        ax.barh([i + offset * height for i in range(len(labels))], share, height=height, label=name)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(labels))], labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("share of the split's records")
    ax.set_title("Label distribution per split" + (f" (top {len(labels)})" if len(totals) > len(labels) else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata=PNG_METADATA)
    plt.close(fig)
    return f"plots/{path.name}"
