"""The embedded default: a fictional parcel company's help centre and its customers' questions.

``prepare_demo`` serves the bundled help-centre site on 127.0.0.1, crawls it into
``inputs/helpcentre.jsonl`` (once: the crawl is an input snapshot, so a rerun is up to date),
copies the bundled questions beside it and writes a build config, so the demo is an ordinary
build a user can open, edit and rerun.

The questions carry a second label for multi-task training, ``topic``, written into the data by
this rule on their intent: ``delivery`` (track_parcel, missed_delivery, locker_pickup,
change_address), ``orders`` (cancel_shipment, delivery_cost), ``after_sales`` (damaged_item,
return_item, refund_status) and ``account`` (account_access).
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import resources
from pathlib import Path

from rich.console import Console

from corpusmill.demo.server import serve_directory
from corpusmill.io import atomic_write, read_records

DATA_FILES = ("questions.csv",)

DEMO_CONFIG = """\
# corpusmill demo build: Parcelly help-centre articles and labelled customer questions.
seed: 13
sources:
  - type: csv
    dataset: parcelly-questions
    path: inputs/questions.csv
    text: text
    label: intent
    meta: [topic]            # a second label, for multi-task training (see the README's Training section)
  - type: records            # the crawl of the bundled help-centre site (pages + FAQ pairs)
    dataset: parcelly-help-centre
    path: inputs/helpcentre.jsonl
clean:
  - step: normalize
    form: NFC
  - step: length
    min_chars: 8
    min_words: 2
  - step: exact_dedup
split:
  method: stratified         # per-intent within one record of 80/10/10; pages and their FAQ pairs together
  ratios: {train: 0.8, validation: 0.1, test: 0.1}
augment:                     # train split only; back-translation needs MarianMT models (see README)
  - step: eda
    operation: typo          # keyboard-typo noise: robustness to how customers really type
    rate: 0.15
    roles: [user]
release:
  name: parcelly-helpdesk
  version: 1.0.0
  output_dir: releases
  description: >-
    Customer questions to the fictional parcel company Parcelly, labelled with 10 intents
    and 4 topics (meta.topic), and the articles of its help centre. Written for the corpusmill demo.
  license: cc-by-4.0
  language: [en]
  task_categories: [text-classification]
"""


PUBLISHED_ORIGIN = "https://help.parcelly.example"
"""Where the demo's records say the help centre lives: the local server's random port must not
reach ids, groups or splits, or two demo runs would split differently."""


def crawl_demo_site(out: Path, console: Console | None = None) -> None:
    """Serve the bundled site on a free loopback port, crawl it, and write the records (sorted by
    id) as of :data:`PUBLISHED_ORIGIN` to ``out``, with the crawl's rejects and stats beside it:
    two runs write the same bytes."""
    from crawlers.extract import rebased
    from crawlers.options import CrawlOptions
    from crawlers.run import crawl

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".crawl-") as work:
        served = Path(work) / out.name
        with resources.as_file(resources.files("corpusmill.demo") / "site") as site, serve_directory(site) as url:
            options = CrawlOptions(start_urls=[url], fast=True, concurrency=1, dataset="parcelly-help-centre")
            crawl(options, served, console=console)  # one request at a time: pages keep their depth
        origin = url.rstrip("/")
        records = sorted((rebased(r, origin, PUBLISHED_ORIGIN) for r in read_records(served)), key=lambda r: r.id)
        with atomic_write(out) as handle:
            handle.writelines(record.to_json() + "\n" for record in records)
        for suffix in (".rejects.jsonl", ".stats.json"):
            text = served.with_name(served.stem + suffix).read_text(encoding="utf-8")
            with atomic_write(out.with_name(out.stem + suffix)) as handle:
                handle.write(text.replace(origin, PUBLISHED_ORIGIN))


def prepare_demo(out_dir: Path, console: Console | None = None) -> Path:
    """Write the demo inputs and config under ``out_dir``; return the config path."""
    inputs = out_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    if not (inputs / "helpcentre.jsonl").exists():
        crawl_demo_site(inputs / "helpcentre.jsonl", console)
    bundled = resources.files("corpusmill.demo") / "data"
    for name in DATA_FILES:
        with (
            resources.as_file(bundled / name) as source,
            source.open("rb") as handle,
            atomic_write(inputs / name, "wb") as target,
        ):
            shutil.copyfileobj(handle, target)
    config = out_dir / "demo.yaml"
    with atomic_write(config) as handle:
        handle.write(DEMO_CONFIG)
    return config
