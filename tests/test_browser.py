"""The web page in a real headless Chromium (Debian's ``chromium``, driven by Playwright), against
a real ``corpusmill serve``: sign in, upload an input, submit the demo build from the editor and
watch it succeed, then browse its release — page through train, filter by a label, open a
reject, an augmented record beside its parent, compare with an earlier version — and check that
a record with ``<script>`` in it is shown as text. On failure the page is saved as a screenshot
under the test's temp dir."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
import yaml
from served import free_port, wait_until_up

from corpusmill.config import load_config
from corpusmill.demo import prepare_demo
from corpusmill.executor import LocalExecutor

TOKEN = "browser-token-51d0"
SCRIPT = "<script>window.__xss = 1</script> Where is my parcel, please?"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (make test installs Debian's package)")
        pytest.skip("no chromium on this machine (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """``corpusmill serve`` over the demo's workspace, which already holds release 0.9.0 (the
    demo's questions without the one added below)."""
    workspace = tmp_path_factory.mktemp("browser") / "ws"
    config = prepare_demo(workspace)
    data = yaml.safe_load(config.read_text())
    data["release"]["version"] = "0.9.0"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    LocalExecutor(load_config(config), workers=1).build()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "corpusmill", "serve", "--port", str(port), "--workspace", str(workspace)],
        env={**os.environ, "CORPUSMILL_TOKEN": TOKEN},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/health")
    yield url, workspace
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def test_a_person_with_a_browser_and_the_token_builds_and_inspects_a_release(chromium, service, tmp_path):
    url, workspace = service
    questions = tmp_path / "questions.csv"
    questions.write_text((workspace / "inputs" / "questions.csv").read_text() + f'"{SCRIPT}",track_parcel,delivery\n')
    page = chromium.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{url}/ui/jobs")
        assert page.url.startswith(f"{url}/signin")
        page.fill("#token", "wrong")
        page.click("button[type=submit]")
        assert "not this service" in page.text_content("#signin-error")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/ui/jobs")
        assert page.context.cookies()[0]["httpOnly"] and TOKEN not in page.context.cookies()[0]["value"]

        page.goto(f"{url}/ui/inputs")
        page.set_input_files("#upload-file", str(questions))
        page.check("#upload-replace")
        page.click("#upload button[type=submit]")
        page.wait_for_selector("#upload-status:has-text('Stored as inputs/questions.csv')")

        page.goto(f"{url}/ui/jobs")
        page.fill("#editor", "seed: 1\nsoruces: []\n")
        page.click("#submit")
        assert "soruces: unknown key" in page.text_content("#errors li")
        page.goto(f"{url}/ui/jobs")  # the editor holds the demo's config again
        page.click("#submit")
        page.wait_for_selector("#jobs tbody tr td.state-succeeded", timeout=180_000)
        page.click("#jobs tbody tr a")
        page.wait_for_selector("#job-result a")
        assert "Records per split" in page.text_content("#log")  # the job's log, read live
        checkpoints = page.locator("#job-progress td:first-child").all_text_contents()
        assert checkpoints[0].startswith("00.read.") and any(".split." in c for c in checkpoints)
        page.click("#job-result a")
        page.wait_for_url(f"{url}/ui/releases/parcelly-helpdesk/1.0.0")
        assert "Balanced" in page.text_content("#accounting")
        assert page.locator("#card img").count() >= 2  # the card's plots, served by the release

        page.click("nav.tabs >> text=Records")
        first = page.locator("#records tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
        assert len(first) == 25 and "showing 1–25" in page.text_content("#record-count")
        page.click("a.next >> nth=0")
        second = page.locator("#records tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
        assert len(second) == 25 and not set(first) & set(second)
        page.select_option("#label-filter", "refund_status")
        page.click("#apply-filters")
        labels = page.locator("#records td.label").all_text_contents()
        assert labels and set(labels) == {"refund_status"}
        page.click("#records tbody tr a >> nth=0")  # a record's own page: its fields, scores and provenance
        assert "refund_status" in page.text_content("#record-facts") and "meta.length" in page.text_content(
            "#record-facts"
        )
        page.go_back()

        page.click("nav.tabs >> text=Rejects")
        page.click("#reject-counts >> text=too_few_chars")
        reasons = page.locator("#rejects td.reason").all_text_contents()
        assert reasons and set(reasons) == {"too_few_chars"}
        assert "chars" in page.text_content("#rejects tbody tr")  # the filter's scores

        page.click("nav.tabs >> text=Augmented")
        row = page.locator("#augmented tbody tr").first
        parent, variant = (
            row.locator("td.parent .text").first.text_content(),
            row.locator("td.variant .text").first.text_content(),
        )
        assert parent and variant and parent != variant and "typo" in row.locator("td.how").text_content()
        assert page.locator("#discarded tbody tr").count() > 0

        page.click("nav.tabs >> text=Compare")
        page.select_option("#other", "0.9.0")
        page.click("#compare")
        assert int(page.text_content("#diff-counts .diff-added td:nth-child(2)")) >= 1

        shown = []
        for split in ("train", "validation", "test"):  # wherever the splitter put it
            page.goto(f"{url}/ui/releases/parcelly-helpdesk/1.0.0/records?split={split}&q=xss")
            shown += page.locator("#records td.content .text").all_text_contents()
            assert page.locator("#records script").count() == 0 and page.evaluate("window.__xss") is None
        assert SCRIPT in shown
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        print(f"screenshot of the failing page: {tmp_path / 'failure.png'} ({page.url})")
        raise
    finally:
        page.close()


def test_docs_render_offline_in_the_browser(chromium, service):
    url, _ = service
    page = chromium.new_page()
    try:
        outside = []
        page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(url) else None)
        page.goto(f"{url}/docs?token={TOKEN}")
        page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # Swagger UI ran and listed the operations
        paths = [p.replace("\u200b", "") for p in page.locator(".opblock-summary-path").all_text_contents()]
        assert "/releases/{name}/{version}/records" in paths and "/inputs/{name}" in paths
        assert outside == []
        assert "token=" not in page.url  # exchanged for the session cookie
    finally:
        page.close()
