"""The ``corpusmill crawl`` command (registered by :mod:`corpusmill.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from corpusmill.console import console, fail, say, usage_error
from corpusmill.errors import CorpusmillError


def crawl(
    urls: Annotated[list[str], typer.Argument(help="Start URLs; links are followed on their hosts only.")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL of records.")],
    max_pages: Annotated[int | None, typer.Option(min=1, help="Stop scheduling after this many pages.")] = None,
    max_depth: Annotated[int, typer.Option(min=0, help="Links followed from a start URL, at most.")] = 10,
    job_dir: Annotated[Path | None, typer.Option(help="Keep crawl state here; rerun to resume.")] = None,
    allow: Annotated[list[str] | None, typer.Option(help="Only follow URLs matching this regex (repeatable).")] = None,
    deny: Annotated[list[str] | None, typer.Option(help="Never follow URLs matching this regex (repeatable).")] = None,
    sitemap: Annotated[list[str] | None, typer.Option(help="Sitemap URL to read (repeatable).")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Politeness off: for sites you own.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 30.0,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Requests in flight at once (default 16, 64 with --fast).")
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(help="redis://HOST:PORT/DB: join the crawl shared by every worker started with these options."),
    ] = None,
    worker_timeout: Annotated[
        float, typer.Option(min=1, help="With --redis: seconds of silence before a worker's pages are requeued.")
    ] = 30.0,
) -> None:
    """Crawl a site politely into records (page text and FAQ question/answer pairs).

    With --redis, start the same command on as many processes or machines as you like: they split
    the site (no page fetched twice), take over the pages of a worker that dies, and each writes
    the whole crawl's records to its --out when the site is done.
    """
    from pydantic import ValidationError

    from crawlers.options import CrawlOptions
    from crawlers.run import crawl as run_crawl

    try:
        options = CrawlOptions(
            start_urls=urls,
            max_pages=max_pages,
            max_depth=max_depth,
            allow=allow or [],
            deny=deny or [],
            sitemaps=sitemap or [],
            fast=fast,
            timeout=timeout,
            concurrency=concurrency,
            redis=redis,
            worker_timeout=worker_timeout,
        )
    except ValidationError as exc:
        raise usage_error(exc) from None
    try:
        result = run_crawl(options, out, job_dir, console)
    except CorpusmillError as exc:
        raise fail(exc) from None
    stats = result.stats
    say(
        f"{stats['pages']} pages: {stats['pages_written']} written as {stats['records']} records "
        f"({stats['faq_pairs']} FAQ pairs) in {stats['seconds']}s"
    )
    # Two lists, as in stats.json: a reason such as "offsite" can name a rejected page (a redirect
    # away) and a link not followed, and the two must not be summed into one number.
    for title, counts in (("Rejected pages", stats["rejected"]), ("Links not followed", stats["not_followed"])):
        if counts:
            say(f"{title} ({sum(counts.values())}):")
            for reason, count in counts.items():
                hint = (
                    f" (deeper than --max-depth {max_depth}: raise it to follow them)" if reason == "max_depth" else ""
                )
                say(f"  {reason}: {count}{hint}")
    if "shared" in stats:
        split = ", ".join(f"{worker}: {n}" for worker, n in stats["shared"]["pages_by_worker"].items())
        say(f"Pages by worker: {split}")
    say(f"Records: {result.out}\nRejects: {result.rejects}\nStats:   {result.stats_path}")
