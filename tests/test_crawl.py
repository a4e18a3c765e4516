"""Crawling on loopback: the real pygments docs site and a generated site full of hazards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from urllib.parse import urlparse

import pytest
from edge_site import Site, crawl_command, edge_sites, linear_routes
from jsonl import read_jsonl

from corpusmill.demo.server import serve_directory
from corpusmill.errors import InputError
from crawlers.options import CrawlOptions
from crawlers.run import crawl
from crawlers.urls import canonical_url


def test_canonical_url_merges_fragment_tracking_and_slash_variants():
    same = [
        "http://a.test/docs/",
        "http://a.test/docs",
        "http://A.test:80/docs/#intro",
        "http://a.test/docs/?utm_source=x&gclid=1",
        "http://a.test/docs/index.html",
    ]
    assert {canonical_url(url) for url in same} == {"http://a.test/docs"}
    assert canonical_url("http://a.test/s?b=2&a=1") == "http://a.test/s?a=1&b=2"
    assert canonical_url("http://a.test:8001/") != canonical_url("http://a.test:8002/")


@pytest.fixture(scope="module")
def pygments_crawl(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pygments") / "pages.jsonl"
    with serve_directory(shared_data / "sites" / "pygments-docs") as url:
        result = crawl(CrawlOptions(start_urls=[url], fast=True), out)
    return result, url


def test_pygments_site_pages_faq_pairs_and_rejects(pygments_crawl):
    result, url = pygments_crawl
    records = read_jsonl(result.out)
    pages = [r for r in records if r["text"] is not None]
    assert result.stats["pages_written"] == 32 == len(pages)
    assert len({r["source"]["uri"] for r in pages}) == 32
    faq = [r for r in records if r["messages"] and r["group"] == canonical_url(url + "faq/")]
    questions = [r["messages"][0]["content"] for r in faq]
    assert len(faq) == 9  # eight question headings and one topic: the page's title says FAQ
    assert "Where does the name Pygments come from?" in questions
    assert "I want this support for this language!" in questions
    assert not {"This Page", "Quick search", "Table of Contents"} & set(questions)  # the sidebar
    assert all(r["messages"][1]["content"] and r["messages"][0]["role"] == "user" for r in faq)
    assert "Py of course stands for Python" in faq[1]["messages"][1]["content"]
    quickstart = next(r for r in pages if r["source"]["uri"].endswith("/docs/quickstart/"))
    assert "pygments.highlight" in quickstart["text"] or "highlight(" in quickstart["text"]
    assert quickstart["meta"]["title"].startswith("Introduction and Quickstart")
    assert quickstart["meta"]["lang"] == "en" and quickstart["meta"]["extractor"] == "trafilatura"
    rejects = read_jsonl(result.rejects)
    missing = sorted(r["url"] for r in rejects if r["reason"] == "http_404")
    assert [m.removeprefix(url) for m in missing] == [
        "docs/lexers/www.colm.net/open-source/ragel",
        "languages/pypy.org",
    ]
    assert result.stats["not_followed"]["offsite"] > 100
    assert all(not r["requested"] for r in rejects if r["reason"] == "offsite")
    assert result.stats["rejected"]["non_html"] >= 20  # the _sources/*.txt "show source" links


def test_hazards_are_each_rejected_with_their_reason(tmp_path):
    with edge_sites() as (site, other):
        options = CrawlOptions(
            start_urls=[site.url],
            fast=True,
            timeout=1.0,
            retries=2,
            backoff=0.1,
            max_bytes=100_000,
            max_depth=4,
            max_redirects=3,
        )
        result = crawl(options, tmp_path / "out.jsonl")
        assert sum(other.requests.values()) == 0, other.requests
        assert site.requests["/private/secret"] == 0
        assert site.requests["/flaky"] == 3
        assert max(int(p.rsplit("/", 1)[1]) for p in site.requests if p.startswith("/calendar/")) == 4
    rejects = {r["url"].removeprefix(site.url): r["reason"] for r in read_jsonl(result.rejects)}
    assert rejects["private/secret"] == "robots_disallowed"
    assert rejects["loop/a"] == "too_many_redirects"
    assert rejects["slow"] == "timeout"
    assert rejects["big"] == "too_large"
    assert rejects["download?file=report"] == "non_html"
    assert rejects["missing"] == "http_404"
    assert rejects["calendar/5"] == "max_depth"
    assert rejects[f"{other.url}stolen".removeprefix(site.url)] == "offsite"
    records = read_jsonl(result.out)
    by_uri = {r["source"]["uri"].removeprefix(site.url): r for r in records if r["text"]}
    assert "flaky" in by_uri
    assert "Café crème brûlée" in by_uri["latin1-declared-utf8"]["text"]
    assert "Naïve résumés from Zürich" in by_uri["utf8-declared-latin1"]["text"]
    faq_pages = [u for u in by_uri if u.startswith("faq")]
    assert len(faq_pages) == 1  # /faq#top and /faq/?utm_source=… are one page
    pairs = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in records if r["messages"]}
    assert pairs["Can I pay by card?"] == "Yes, every major card."
    assert pairs["Do you ship abroad?"].startswith("We ship to thirty countries.\n\nThis page explains")
    assert result.stats["pages"] == result.stats["pages_written"] + sum(result.stats["rejected"].values())


def test_unreachable_start_url_is_an_error_naming_the_url(tmp_path):
    probe = Site(lambda *a: (200, {}, b""))
    url = probe.url
    probe.server_close()  # nothing listens there now
    with pytest.raises(InputError, match=f"^{url}: unreachable"):
        crawl(CrawlOptions(start_urls=[url], fast=True, retries=0), tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_kill_9_then_resume_gives_the_same_pages_once_each(tmp_path):
    site = Site(linear_routes(pages=150, delay=0.02))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        reference = tmp_path / "reference.jsonl"
        subprocess.run(
            crawl_command(site.url, str(reference), "--job-dir", str(tmp_path / "ref-job")),
            check=True,
            capture_output=True,
            timeout=300,
        )
        out, job = tmp_path / "out.jsonl", tmp_path / "job"
        process = subprocess.Popen(
            crawl_command(site.url, str(out), "--job-dir", str(job)),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while not ((job / "records.jsonl").exists() and len((job / "records.jsonl").read_bytes().splitlines()) > 75):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        assert not out.exists()
        written_before = {urlparse(r["meta"]["requested_url"]).path for r in read_jsonl(job / "records.jsonl")}
        assert 75 <= len(written_before) < 150
        requests_before = dict(site.requests)
        subprocess.run(
            crawl_command(site.url, str(out), "--job-dir", str(job)), check=True, capture_output=True, timeout=300
        )
        resume_requests = {path: site.requests[path] - requests_before.get(path, 0) for path in site.requests}
    finally:
        site.shutdown()
        site.server_close()
    expected = sorted(r["source"]["uri"] for r in read_jsonl(reference))
    resumed = [r["source"]["uri"] for r in read_jsonl(out)]
    assert len(expected) == 150
    assert sorted(resumed) == expected  # the same pages, none twice
    # The resume fetched only what was left: no page written before the kill is requested again,
    # and at most the unfinished pages (plus robots.txt) are; a fresh crawl would fetch all 150.
    assert not [path for path in written_before if resume_requests.get(path)]
    pages_requested = sum(n for path, n in resume_requests.items() if path != "/robots.txt")
    assert 0 < pages_requested <= 150 - len(written_before)


def test_a_page_that_hangs_extraction_falls_back_without_hanging_the_crawl(monkeypatch):
    import asyncio
    from types import SimpleNamespace

    import hanging_extract
    from scrapy.statscollectors import MemoryStatsCollector

    import crawlers.pipelines as pipelines
    from crawlers.items import PageItem

    monkeypatch.setattr(pipelines, "extract_from_bytes", hanging_extract.extract_or_hang)
    crawler = SimpleNamespace(
        spider=SimpleNamespace(options=CrawlOptions(start_urls=["http://x.test/"], extract_timeout=1.0))
    )
    from scrapy.settings import Settings

    crawler.stats = MemoryStatsCollector(SimpleNamespace(settings=Settings()))
    pipeline = pipelines.ExtractionPipeline(crawler)
    page = b"<html><head><title>T</title></head><body><main><p>Plain words here.</p></main></body></html>"
    url = "http://x.test/"
    item = PageItem(url, url, url, url, 0, 200, "utf-8", page, "2026-01-01T00:00:00+00:00", None)
    started = time.monotonic()
    try:
        result = asyncio.run(pipeline.process_item(item))
    finally:
        pipeline.close_spider()
    assert time.monotonic() - started < 30
    assert result.extracted["extractor"] == "beautifulsoup"
    assert result.extracted["text"] == "Plain words here."
    assert result.body is None  # the page's bytes are let go once extracted
    assert crawler.stats.get_value("corpusmill/extraction_timeouts") == 1


def test_crawl_source_in_a_build_config(tmp_path, make_config):
    from corpusmill.config import load_config
    from corpusmill.executor import LocalExecutor
    from corpusmill.release import verify_release

    with edge_sites() as (site, _other):
        config = make_config(
            tmp_path,
            sources=[
                {
                    "type": "crawl",
                    "dataset": "edge",
                    "path": "crawl/edge.jsonl",
                    "start_urls": [site.url],
                    "fast": True,
                    "timeout": 1.0,
                    "retries": 0,
                    "max_depth": 2,
                    "max_bytes": 100_000,
                }
            ],
            clean=[{"step": "normalize"}],
        )
        release = LocalExecutor(load_config(config), workers=1).build().release_dir
    manifest = verify_release(release)
    records = [
        json.loads(line)
        for split in manifest["splits"]
        for line in (release / "jsonl" / f"{split}.jsonl").read_text().splitlines()
    ]
    assert {r["source"]["kind"] for r in records} == {"crawl"}
    assert {r["source"]["dataset"] for r in records} == {"edge"}
    assert any(r["messages"] for r in records) and any(r["text"] for r in records)
    by_group: dict[str, set[str]] = {}
    for record in records:
        by_group.setdefault(record["group"], set()).add(record["split"])
    assert all(len(splits) == 1 for splits in by_group.values())  # a page and its FAQ pairs stay together
    assert (tmp_path / "crawl" / "edge.rejects.jsonl").exists()


FAQ_PAGES = {
    "jsonld": """<html><head><title>Help</title><script type="application/ld+json">
        {"@context": "https://schema.org", "@graph": [{"@type": "FAQPage", "mainEntity": [
          {"@type": "Question", "name": "Can I change my delivery slot?",
           "acceptedAnswer": {"@type": "Answer", "text": "<p>Yes, until <b>8 pm</b> the day before.</p>"}}]}]}
        </script></head><body><main><p>Our help pages answer common questions.</p></main></body></html>""",
    "dl": """<html><head><title>Returns</title></head><body><main><dl>
        <dt>How long do refunds take?</dt><dd>Five working days.</dd><dd>Card refunds may take longer.</dd>
        <dt>Opening hours</dt><dd>Nine to five.</dd></dl></main></body></html>""",
    "details": """<html><head><title>Lockers</title></head><body><main>
        <details><summary>Where are the lockers?</summary><p>In every station hall.</p></details>
        </main></body></html>""",
    "heading": """<html><head><title>Parcels</title></head><body><main><h1>Parcels</h1>
        <h2>Is my parcel insured?</h2><p>Up to 500 euros.</p><h2>Prices</h2><p>From 3 euros.</p>
        </main></body></html>""",
}
FAQ_EXPECTED = {
    "jsonld": ("Can I change my delivery slot?", "Yes, until 8 pm the day before."),
    "dl": ("How long do refunds take?", "Five working days.\n\nCard refunds may take longer."),
    "details": ("Where are the lockers?", "In every station hall."),
    "heading": ("Is my parcel insured?", "Up to 500 euros."),
}


@pytest.mark.parametrize("pattern", sorted(FAQ_PAGES))
def test_each_faq_pattern_alone_gives_its_pair(pattern):
    """Each source of question/answer pairs works on a page that has only it; a definition or a
    heading that asks nothing gives no pair outside a FAQ page."""
    from crawlers.extract import extract_page

    page = extract_page(FAQ_PAGES[pattern], "http://127.0.0.1/shop/page")  # not a FAQ or help URL
    assert [(p["question"], p["answer"], p["pattern"]) for p in page["faq"]] == [(*FAQ_EXPECTED[pattern], pattern)]


def test_a_page_with_no_faq_markup_has_no_pairs_and_keeps_its_facts():
    from crawlers.extract import extract_page

    html = (
        '<html lang="en"><head><title>About ¶</title><link rel="canonical nofollow" href="/about"></head>'
        '<body><main><h1>About us<a class="headerlink" href="#x">¶</a></h1><h2>Why ask?</h2>'
        "<p>We deliver parcels across the country every day of the week.</p></main></body></html>"
    )
    page = extract_page(html, "http://127.0.0.1/about")
    assert page["title"] == "About" and page["canonical"] == "/about" and page["html_lang"] == "en"
    assert page["headings"] == ["About us", "Why ask?"]
    assert [p["question"] for p in page["faq"]] == ["Why ask?"]
    plain = extract_page(html.replace("Why ask?", "Our story"), "http://127.0.0.1/about")
    assert plain["faq"] == [] and plain["headings"] == ["About us", "Our story"]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ({"allow": [r"/$", r"/p/\d$"]}, {"/", *(f"/p/{n}" for n in range(1, 10))}),  # one-digit pages only
        ({"deny": [r"/p/1\d$"]}, {"/", *(f"/p/{n}" for n in range(1, 30) if not 10 <= n <= 19)}),
    ],
)
def test_allow_and_deny_patterns_decide_which_links_are_requested(tmp_path, patterns, expected):
    site = Site(linear_routes(pages=30, delay=0))
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        options = CrawlOptions(start_urls=[site.url], fast=True, max_depth=100, **patterns)
        result = crawl(options, tmp_path / "out.jsonl")
    finally:
        site.shutdown()
        site.server_close()
    assert {path for path in site.requests if path != "/robots.txt"} == expected
    assert result.stats["not_followed"]["filtered_by_pattern"] > 0
    filtered = {r["url"] for r in read_jsonl(result.rejects) if r["reason"] == "filtered_by_pattern"}
    assert filtered and all(urlparse(url).path not in expected for url in filtered)


HELP_PAGE = """<html><head><title>{title} | Shirtshop</title></head><body>
<nav><h2>Menu</h2><ul><li><a href="/">Home</a></li></ul></nav>
<main><h1>{title}</h1>
<h2>My shirt is the wrong size!</h2><p>Send it back within 30 days and we exchange it.</p>
<h2>Coffee</h2><p>Our shops serve coffee from 8 am.</p>
<h2>Shipping</h2>
<h3>Do you ship abroad?</h3><p>Yes, to every EU country.</p>
<h3>Tracking</h3><p>Every parcel has a tracking link.</p>
</main><footer><h2>Contact</h2><p>hello@shirtshop.example</p></footer></body></html>"""


@pytest.mark.parametrize(
    ("title", "path", "expected"),
    [
        ("Help", "/support/", ["My shirt is the wrong size!", "Coffee", "Do you ship abroad?", "Tracking"]),
        ("Questions and answers", "/qa/", ["My shirt is the wrong size!", "Coffee", "Do you ship abroad?", "Tracking"]),
        ("Our story", "/faq/", ["My shirt is the wrong size!", "Coffee", "Do you ship abroad?", "Tracking"]),
        ("Our story", "/about/", ["Do you ship abroad?"]),  # elsewhere only headings that ask
    ],
)
def test_on_a_faq_or_help_page_every_topic_heading_with_its_own_text_is_a_pair(title, path, expected):
    from crawlers.extract import extract_from_bytes

    html = HELP_PAGE.format(title=title).encode()
    page = extract_from_bytes(html, "utf-8", f"https://shirtshop.example{path}")
    assert [pair["question"] for pair in page["faq"]] == expected  # not "Shipping", "Menu" or "Contact"
    answers = {pair["question"]: pair["answer"] for pair in page["faq"]}
    assert answers["Do you ship abroad?"] == "Yes, to every EU country."
    if "Coffee" in answers:
        assert answers["Coffee"] == "Our shops serve coffee from 8 am."
        assert {p["question"]: p["pattern"] for p in page["faq"]}["Coffee"] == "topic_heading"
