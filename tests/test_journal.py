"""The crawl journal on its own: what a kill at each point leaves, and what a restart makes of it."""

from __future__ import annotations

import json
import stat

from crawlers.journal import CrawlJournal, read_json_lines, truncate_torn_tail


def lines_of(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_a_torn_last_line_is_dropped_when_read_and_cut_when_reopened(tmp_path):
    path = tmp_path / "done.jsonl"
    path.write_text('{"canonical": "a", "outcome": "written"}\n{"canonical": "b", "outc', encoding="utf-8")
    assert read_json_lines(path) == [{"canonical": "a", "outcome": "written"}]
    truncate_torn_tail(path)
    assert path.read_text(encoding="utf-8") == '{"canonical": "a", "outcome": "written"}\n'
    truncate_torn_tail(path)  # a whole file is left as it is
    assert path.read_text(encoding="utf-8") == '{"canonical": "a", "outcome": "written"}\n'
    truncate_torn_tail(tmp_path / "absent.jsonl")
    assert not (tmp_path / "absent.jsonl").exists()
    assert read_json_lines(tmp_path / "absent.jsonl") == []


def test_a_complete_line_that_is_not_json_ends_the_reading(tmp_path):
    path = tmp_path / "frontier.jsonl"
    path.write_text('{"canonical": "a"}\nnot json\n{"canonical": "c"}\n', encoding="utf-8")
    assert read_json_lines(path) == [{"canonical": "a"}]


def test_a_fresh_journal_claims_up_to_the_page_limit_and_writes_each_claim(tmp_path):
    job = tmp_path / "jobs" / "site"  # parents made as needed
    journal = CrawlJournal(job)
    assert journal.job_dir == job
    assert not journal.resuming and journal.pending() == []
    assert journal.claim("https://x.test/a", "https://x.test/a", 0, max_pages=2)
    assert journal.resuming and journal.seen("https://x.test/a") and not journal.seen("https://x.test/b")
    assert journal.claim("https://x.test/b#top", "https://x.test/b", 1, max_pages=2)
    assert not journal.claim("https://x.test/c", "https://x.test/c", 1, max_pages=2)
    assert journal.claim("https://x.test/c", "https://x.test/c", 1, max_pages=None)
    assert [entry["url"] for entry in journal.pending()] == [
        "https://x.test/a",
        "https://x.test/b#top",
        "https://x.test/c",
    ]
    journal.close()
    frontier = [json.loads(line) for line in lines_of(job / "frontier.jsonl")]
    assert frontier == [
        {"url": "https://x.test/a", "canonical": "https://x.test/a", "depth": 0},
        {"url": "https://x.test/b#top", "canonical": "https://x.test/b", "depth": 1},
        {"url": "https://x.test/c", "canonical": "https://x.test/c", "depth": 1},
    ]


def test_each_page_is_completed_once_with_its_lines_then_its_done_line(tmp_path):
    job = tmp_path / "job"
    journal = CrawlJournal(job)
    for page in ("a", "b"):
        journal.claim(f"https://x.test/{page}", f"https://x.test/{page}", 0, None)
    record = json.dumps({"id": "1", "meta": {"requested_url": "https://x.test/a"}})
    assert journal.complete(
        "https://x.test/a",
        "written",
        [record, record],
        rejected=False,
        aliases={"https://x.test/a", "https://x.test/a2"},
        lease=None,
    )
    assert not journal.complete("https://x.test/a", "written", [record], rejected=False, aliases=set(), lease=None)
    reject = json.dumps({"url": "https://x.test/b", "reason": "http_404", "requested": True})
    assert journal.complete(
        "https://x.test/b", "http_404", [reject], rejected=True, aliases={"https://x.test/b"}, lease=None
    )
    assert journal.was_written("https://x.test/a2") and not journal.was_written("https://x.test/b")
    assert journal.pending() == []
    journal.close()
    assert lines_of(job / "records.jsonl") == [record, record]
    assert lines_of(job / "rejects.jsonl") == [reject]
    done = [json.loads(line) for line in lines_of(job / "done.jsonl")]
    assert done == [
        {"canonical": "https://x.test/a", "outcome": "written"},
        {"canonical": "https://x.test/b", "outcome": "http_404"},
    ]
    assert stat.S_IMODE((job / "records.jsonl").stat().st_mode) & 0o111 == 0  # data, not executable
    journal.append(job / "nothing.jsonl", [])
    assert not (job / "nothing.jsonl").exists()  # no lines, no file


def test_a_restart_resumes_what_was_scheduled_and_not_done(tmp_path):
    job = tmp_path / "job"
    journal = CrawlJournal(job)
    for page in ("a", "b", "c"):
        journal.claim(f"https://x.test/{page}", f"https://x.test/{page}", 1, None)
    record = json.dumps(
        {"id": "1", "source": {"uri": "https://x.test/a-moved"}, "meta": {"requested_url": "https://x.test/a"}}
    )
    reject = json.dumps({"url": "https://x.test/b", "reason": "http_500", "requested": True})
    journal.complete("https://x.test/a", "written", [record], rejected=False, aliases={"https://x.test/a"}, lease=None)
    journal.complete("https://x.test/b", "http_500", [reject], rejected=True, aliases=set(), lease=None)
    journal.close()
    again = CrawlJournal(job)
    assert again.resuming
    assert again.pending() == [{"url": "https://x.test/c", "canonical": "https://x.test/c", "depth": 1}]
    # The redirect target a page was fetched from counts as written after the restart too.
    assert again.was_written("https://x.test/a") and again.was_written("https://x.test/a-moved")
    assert not again.was_written("https://x.test/b")
    assert again.done == {"https://x.test/a": "written", "https://x.test/b": "http_500"}
    assert not again.complete("https://x.test/a", "written", [record], rejected=False, aliases=set(), lease=None)
    again.close()
    assert lines_of(job / "records.jsonl") == [record]


def test_a_kill_between_a_pages_output_and_its_done_line_is_mended_on_restart(tmp_path):
    job = tmp_path / "job"
    journal = CrawlJournal(job)
    for page in ("a", "b", "c"):
        journal.claim(f"https://x.test/{page}", f"https://x.test/{page}", 0, None)
    journal.close()
    # Output written, then killed before the done lines: a page's record, a page's reject, a skipped link.
    (job / "records.jsonl").write_text(
        json.dumps({"id": "0"})  # not a crawled page's record: no requested URL, nothing to mend
        + "\n"
        + json.dumps({"id": "1", "meta": {"requested_url": "https://x.test/a#frag"}})
        + "\n",
        encoding="utf-8",
    )
    (job / "rejects.jsonl").write_text(
        json.dumps({"url": "https://x.test/b", "reason": "too_large", "requested": True})
        + "\n"
        + json.dumps({"url": "https://elsewhere.test/", "reason": "off_site", "requested": False})
        + "\n",
        encoding="utf-8",
    )
    again = CrawlJournal(job)
    assert again.done == {"https://x.test/a": "written", "https://x.test/b": "too_large"}
    assert again.was_written("https://x.test/a")
    assert [entry["canonical"] for entry in again.pending()] == ["https://x.test/c"]
    # The skipped link was already listed: listing it again writes nothing; a new one is listed once.
    again.report_skip("https://elsewhere.test/", json.dumps({"url": "https://elsewhere.test/"}))
    again.report_skip("https://other.test/", "other")
    again.report_skip("https://other.test/", "other")
    again.release(None)
    again.close()
    assert lines_of(job / "rejects.jsonl")[2:] == ["other"]
    assert [json.loads(line) for line in lines_of(job / "done.jsonl")] == [
        {"canonical": "https://x.test/a", "outcome": "written"},
        {"canonical": "https://x.test/b", "outcome": "too_large"},
    ]
