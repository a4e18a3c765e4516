"""The web page: server-rendered HTML over the same functions the API answers with.

Jinja2 templates with autoescaping (records are untrusted text: a ``<script>`` in one is shown as
text), a little JavaScript for what must be live (job progress and logs, the editor, uploads)
that writes only through ``textContent``, and every asset served from the package: the page
works on a machine with no internet. Markdown (cards, training reports) is rendered by
markdown-it with raw HTML off, so a description in a config cannot inject markup either.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jinja2
import yaml
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markdown_it import MarkdownIt

from corpusmill.demo import DEMO_CONFIG
from corpusmill.service import browse
from corpusmill.service.inputs import list_inputs

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(resources.files("corpusmill.service") / "templates")),
    autoescape=True,
)
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
RELATIVE_IMAGE = re.compile(r"!\[([^\]]*)\]\((?!/|[a-z]+:)([A-Za-z0-9_./-]+\.png)\)")
MAX_FORM = 4096


@dataclass
class Site:
    """What the pages need from the app that serves them (its stores and its guards)."""

    workspace: Path
    sessions: Any
    session_cookie: str
    valid_token: Callable[[str | None], bool]
    authorised: Callable[..., None]
    """The API's own check: bearer token, or session cookie with its CSRF token on a state change."""
    set_session: Callable[[Response], None]
    jobs: Callable[[], list[dict[str, Any]]]
    job: Callable[[str], dict[str, Any]]
    job_view: Callable[[dict[str, Any]], dict[str, Any]]
    release_dir: Callable[[str, str], Path]
    release_list: Callable[[], list[dict[str, Any]]]
    paged: Callable[..., browse.Page]
    story: Callable[[Path, str], dict[str, Any]]
    run_dir: Callable[[str], Path]


class SignInFirst(Exception):
    def __init__(self, path: str) -> None:
        self.path = path


def markdown(text: str, image_base: str) -> str:
    """Markdown as HTML (raw HTML in it escaped), its relative images served from ``image_base``."""
    if text.startswith("---\n") and "\n---\n" in text[4:]:
        text = text[text.index("\n---\n", 4) + 5 :]
    return MARKDOWN.render(RELATIVE_IMAGE.sub(lambda m: f"![{m[1]}]({image_base}/{m[2]})", text))


def front_matter(text: str) -> str:
    if text.startswith("---\n") and "\n---\n" in text[4:]:
        return text[4 : text.index("\n---\n", 4)]
    return ""


def table_of(value: Any) -> dict[str, Any] | None:
    """A report value as a table when it is one: a mapping of mappings (rows by key) or a list
    of mappings; ``None`` for scalars and mixed shapes. How the page shows any step's report
    without knowing the step."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        columns = list(dict.fromkeys(c for v in value.values() for c in v if not isinstance(v[c], dict | list)))
        if columns:
            return {
                "columns": ["", *columns],
                "rows": [[key, *(v.get(c, "") for c in columns)] for key, v in value.items()],
            }
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns = list(dict.fromkeys(c for v in value for c in v))
        return {
            "columns": columns,
            "rows": [
                [json.dumps(v.get(c)) if isinstance(v.get(c), dict | list) else v.get(c, "") for c in columns]
                for v in value
            ],
        }
    return None


def report_sections(report: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """A step report flattened into titled tables and key/value lines, nested mappings first
    walked down (``leakage`` → ``leakage.pairs``)."""
    sections: list[dict[str, Any]] = []
    scalars = []
    for key, value in report.items():
        name = f"{prefix}{key}"
        table = table_of(value)
        if table is not None:
            sections.append({"title": name, "table": table, "pairs": []})
        elif isinstance(value, dict) and value:
            sections += report_sections(value, f"{name}.")
        else:
            scalars.append((name, json.dumps(value) if isinstance(value, dict | list) else value))
    if scalars:
        sections.insert(0, {"title": prefix.rstrip(".") or "summary", "table": None, "pairs": scalars})
    return sections


def add_pages(app: FastAPI, site: Site) -> None:
    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = TEMPLATES.get_template(template).render(
            csrf=getattr(request.state, "csrf", ""), path=request.url.path, **context
        )
        response = HTMLResponse(html, status_code=status)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def signed_in(request: Request) -> None:
        """A page needs a session (or the bearer token); without one, the sign-in page."""
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer ") and site.valid_token(authorization[7:]):
            request.state.csrf = ""
            return
        nonce = site.sessions.nonce_of(request.cookies.get(site.session_cookie))
        if nonce is None:
            raise SignInFirst(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        request.state.csrf = site.sessions.csrf(nonce)

    @app.exception_handler(SignInFirst)
    async def sign_in_first(request: Request, exc: SignInFirst) -> RedirectResponse:
        return RedirectResponse(f"/signin?{urlencode({'next': exc.path})}", status_code=303)

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        signed_in(request)
        return RedirectResponse("/ui/jobs", status_code=303)

    @app.get("/signin", include_in_schema=False)
    def signin_page(request: Request, next: str = "/ui/jobs") -> HTMLResponse:
        return render(request, "signin.html", next=_local(next), error="")

    @app.post("/session", include_in_schema=False)
    async def signin(request: Request) -> Response:
        """The sign-in form: the token for a session cookie (the form is urlencoded: parsed here,
        bounded, rather than with a multipart dependency)."""
        body = await request.body()
        form = parse_qs(body[:MAX_FORM].decode("utf-8", "replace"), max_num_fields=4)
        given, next_path = form.get("token", [""])[0], _local(form.get("next", ["/ui/jobs"])[0])
        if not site.valid_token(given):
            return render(request, "signin.html", 401, next=next_path, error="That is not this service's token.")
        response = RedirectResponse(next_path, status_code=303)
        site.set_session(response)
        return response

    @app.post("/session/end", include_in_schema=False, dependencies=[Depends(site.authorised)])
    def signout() -> Response:
        """Forget the session cookie (signed in and with the CSRF token, as every state change)."""
        response = Response(status_code=204)
        response.delete_cookie(site.session_cookie)
        return response

    @app.get("/ui/jobs", include_in_schema=False)
    def jobs_page(request: Request, edit: str = "") -> HTMLResponse:
        signed_in(request)
        jobs = [site.job_view(job) for job in site.jobs()][::-1]
        if edit:
            source = site.job(edit)
            text = yaml.safe_dump(source["config"], sort_keys=False, allow_unicode=True)
        else:
            text = DEMO_CONFIG
        return render(request, "jobs.html", jobs=jobs, editor=text, edit=edit)

    @app.get("/ui/jobs/{job_id}", include_in_schema=False)
    def job_page(request: Request, job_id: str) -> HTMLResponse:
        signed_in(request)
        job = site.job(job_id)
        config = yaml.safe_dump(job["config"], sort_keys=False, allow_unicode=True)
        return render(request, "job.html", job=site.job_view(job), config=config)

    @app.get("/ui/inputs", include_in_schema=False)
    def inputs_page(request: Request) -> HTMLResponse:
        signed_in(request)
        return render(request, "inputs.html", inputs=list_inputs(site.workspace))

    @app.get("/ui/releases", include_in_schema=False)
    def releases_page(request: Request) -> HTMLResponse:
        signed_in(request)
        releases = site.release_list()
        versions: dict[str, list[str]] = {}
        for entry in releases:
            versions.setdefault(entry["name"], []).append(entry["version"])
        return render(request, "releases.html", releases=releases, versions=versions)

    def release_context(name: str, version: str) -> tuple[Path, dict[str, Any]]:
        directory = site.release_dir(name, version)
        manifest = browse.manifest_of(directory)
        return directory, {
            "name": name,
            "version": version,
            "manifest": manifest,
            "base": f"/ui/releases/{quote(name)}/{quote(version)}",
            "files_base": f"/releases/{quote(name)}/{quote(version)}/files",
            "others": [e["version"] for e in site.release_list() if e["name"] == name and e["version"] != version],
        }

    @app.get("/ui/releases/{name}/{version}", include_in_schema=False)
    def release_page(request: Request, name: str, version: str) -> HTMLResponse:
        signed_in(request)
        directory, context = release_context(name, version)
        card = (directory / "README.md").read_text(encoding="utf-8")
        reports = {step: report_sections(report) for step, report in context["manifest"].get("reports", {}).items()}
        return render(
            request,
            "release.html",
            tab="overview",
            card=markdown(card, context["files_base"]),
            card_yaml=front_matter(card),
            reports=reports,
            **context,
        )

    @app.get("/ui/releases/{name}/{version}/records", include_in_schema=False)
    def records_page(
        request: Request,
        name: str,
        version: str,
        split: str = "train",
        config: str = "",
        q: str = "",
        label: str = "",
        source: str = "",
        min_chars: str = "",
        max_chars: str = "",
        offset: int = 0,
    ) -> HTMLResponse:
        signed_in(request)
        directory, context = release_context(name, version)
        wanted = browse.RecordFilter(q[:200], label, source, _int(min_chars), _int(max_chars))
        page = site.paged(browse.records_page, directory, split, wanted, max(0, offset), 25, config)
        query = {"split": split, "config": config, "q": q, "label": label, "source": source}
        query |= {"min_chars": min_chars, "max_chars": max_chars}
        return render(
            request, "records.html", tab="records", page=page, query=query, pager=_pager(page, query), **context
        )

    @app.get("/ui/releases/{name}/{version}/records/{record_id:path}", include_in_schema=False)
    def record_page(request: Request, name: str, version: str, record_id: str) -> HTMLResponse:
        signed_in(request)
        directory, context = release_context(name, version)
        story = site.story(directory, record_id[:300])
        shown = json.dumps(story["record"], indent=2, ensure_ascii=False)
        return render(request, "record.html", tab="records", story=story, record_json=shown, **context)

    @app.get("/ui/releases/{name}/{version}/rejects", include_in_schema=False)
    def rejects_page(
        request: Request, name: str, version: str, step: str = "", reason: str = "", offset: int = 0
    ) -> HTMLResponse:
        signed_in(request)
        directory, context = release_context(name, version)
        counts = browse.reject_counts(context["manifest"])
        page = site.paged(browse.rejects_page, directory, step, reason, max(0, offset), 20) if step else None
        query = {"step": step, "reason": reason}
        return render(
            request,
            "rejects.html",
            tab="rejects",
            counts=counts,
            page=page,
            step=step,
            reason=reason,
            pager=_pager(page, query) if page else None,
            **context,
        )

    @app.get("/ui/releases/{name}/{version}/augmented", include_in_schema=False)
    def augmented_page(
        request: Request, name: str, version: str, split: str = "train", offset: int = 0, discarded_offset: int = 0
    ) -> HTMLResponse:
        signed_in(request)
        directory, context = release_context(name, version)
        page = site.paged(browse.augmented_pairs, directory, split, max(0, offset), 20)
        thrown = site.paged(browse.discarded_variants, directory, split, max(0, discarded_offset), 20)
        discarded = {
            step: report["discarded"]
            for segment in context["manifest"]["segments"]
            for step, report in ((s["label"], s) for s in segment["steps"])
            if report["discarded"]
        }
        return render(
            request,
            "augmented.html",
            tab="augmented",
            page=page,
            split=split,
            discarded=discarded,
            thrown=thrown,
            pager=_pager(page, {"split": split, "discarded_offset": str(discarded_offset)}),
            thrown_pager=_pager(thrown, {"split": split, "offset": str(offset)}, "discarded_offset"),
            **context,
        )

    @app.get("/ui/releases/{name}/{version}/compare", include_in_schema=False)
    def compare_page(request: Request, name: str, version: str, other: str = "") -> HTMLResponse:
        signed_in(request)
        directory, context = release_context(name, version)
        diff = browse.compare_releases(site.release_dir(name, other), directory) if other else None
        return render(request, "compare.html", tab="compare", other=other, diff=diff, **context)

    @app.get("/ui/runs", include_in_schema=False)
    def runs_page(request: Request) -> HTMLResponse:
        signed_in(request)
        return render(request, "runs.html", runs=browse.training_runs(site.workspace))

    @app.get("/ui/runs/{run:path}", include_in_schema=False)
    def run_page(request: Request, run: str) -> HTMLResponse:
        signed_in(request)
        directory = site.run_dir(run)
        report_md = directory / "report.md"
        text = report_md.read_text(encoding="utf-8") if report_md.is_file() else ""
        entry = next(e for e in browse.training_runs(site.workspace) if e["run"] == run)
        return render(request, "run.html", run=entry, report=markdown(text, f"/runs/{quote(run)}/files"))


def _local(path: str) -> str:
    """Where to go after signing in: a path on this site, never another origin."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/ui/jobs"
    return path


def _int(value: str) -> int | None:
    return int(value) if value.strip().isdigit() else None


def _pager(page: browse.Page, query: dict[str, str], key: str = "offset") -> dict[str, str | None]:
    kept = {k: v for k, v in query.items() if v}

    def link(offset: int) -> str:
        return "?" + urlencode({**kept, key: offset})

    previous = link(max(0, page.offset - page.limit)) if page.offset > 0 else None
    following = link(page.offset + page.limit) if page.offset + page.limit < page.matched else None
    last = page.offset + len(page.rows)
    return {"previous": previous, "next": following, "shown": f"{page.offset + 1 if page.rows else 0}–{last}"}
