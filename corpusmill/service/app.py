"""The HTTP API and the web page: crawl, build and train jobs, inputs, releases and training
runs, with a bearer token, a signed session cookie for browsers, and target guards.

Threat model: whoever holds the token may run jobs, upload inputs, read logs and download
releases; the token is the only credential. API clients send it as ``Authorization: Bearer``;
a browser exchanges it once (the sign-in form, or the printed ``?token=`` link) for an
``HttpOnly``, ``SameSite=Strict`` session cookie that carries a MAC of a random nonce, never the
token. A cookie-signed request that changes state must also carry the session's CSRF token
(``X-CSRF-Token``, which the pages send from their ``<meta>``): another site's form or script
cannot read it. A token holder still cannot reach outside the workspace (every path-typed config
value is confined after symlinks, upload names are sanitised), the operator's network (every
crawl target, submitted or redirected, goes through one guard), another Redis (refused), or the
server's memory (bodies are capped by the bytes actually read, configs by nesting depth, YAML
may not use aliases). Without a token nobody reaches anything but ``/health``, the sign-in page
and static assets; on loopback the ``Host`` header must name the bound address, so a web page
cannot reach the service by DNS rebinding.

(No ``from __future__ import annotations`` here: FastAPI resolves the dependency annotations.)
"""

import hmac
import json
import secrets
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit

import yaml
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as Path_
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corpusmill import __version__
from corpusmill.config import MAX_NESTING, SAFE_NAME, BuildConfig, from_step_list, parse_config, sections_from_steps
from corpusmill.errors import ConfigError
from corpusmill.executor import LocalExecutor
from corpusmill.registry import get_step
from corpusmill.schema import dotted_path
from corpusmill.service import browse
from corpusmill.service.inputs import INPUTS, UploadTooLarge, list_inputs, sanitised_name, save_upload
from corpusmill.service.jobs import JobStore, Supervisor
from corpusmill.service.web import Site, add_pages
from corpusmill.validators import PathOrName, nesting_depth_over, outside, path_values
from crawlers.middlewares import private_address
from crawlers.options import CrawlOptions

MAX_BODY = 1_000_000
MAX_UPLOAD = 256 * 1024 * 1024
SESSION_COOKIE = "corpusmill_session"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
STATIC = resources.files("corpusmill.service") / "static"
SWAGGER = resources.files("fastapi_swagger") / "resources"
"""Swagger UI 5 as fastapi-swagger ships it: ``/docs`` works with no CDN in reach."""


Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=browse.MAX_PAGE)]


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["crawl", "build", "train"]
    config: dict[str, Any] | None = None
    """build: the build config schema; crawl: crawl options plus ``out`` (a file name);
    train: ``release`` (``name/version``), ``task``, ``model`` and an optional ``train`` config."""
    config_yaml: str | None = None
    """The same config as YAML text (what the page's editor sends); errors name its lines."""

    @model_validator(mode="after")
    def _one_config(self) -> "JobRequest":
        if (self.config is None) == (self.config_yaml is None):
            raise ValueError("give exactly one of config and config_yaml")
        return self


class TrainJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
    task: Literal["classification", "multi-task", "causal-lm"] = "classification"
    model: PathOrName = "minilm"
    train: dict[str, Any] = {}


def _invalid(path: str, message: str, field: str = "config") -> HTTPException:
    loc = ["body", field, *[p for p in path.replace("[", ".").replace("]", "").split(".") if p]]
    return HTTPException(422, detail=[{"loc": loc, "msg": message, "type": "value_error"}])


def parse_yaml_config(text: str) -> dict[str, Any]:
    """A config sent as YAML: one mapping, no anchors or aliases (an alias bomb expands a
    kilobyte into billions of nodes once walked), nested at most ``MAX_NESTING`` deep (PyYAML
    builds nodes recursively: a megabyte of ``[`` would exhaust the stack), errors with their
    line. Both are checked on the event stream, which is flat, before anything is built."""
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _invalid("", f"line {line}: YAML anchors and aliases are not accepted", "config_yaml")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise _invalid("", f"line {line}: nested deeper than {MAX_NESTING} levels", "config_yaml")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise _invalid("", f"{line}invalid YAML: {getattr(exc, 'problem', None) or exc}", "config_yaml") from None
    if not isinstance(data, dict):
        raise _invalid("", "the YAML must be a mapping of config keys", "config_yaml")
    return data


class BodyLimit:
    """Refuses a request body over ``max_body`` bytes by counting what is actually received,
    whatever ``Content-Length`` says (a chunked body has none): the body is read up to the limit
    before the app sees it, then replayed. Uploads (``PUT /inputs/…``) stream instead: their
    handler counts against ``max_upload`` as it writes."""

    def __init__(self, app: ASGIApp, max_body: int, max_upload: int) -> None:
        self.app, self.max_body, self.max_upload = app, max_body, max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        upload = scope["method"] == "PUT" and scope["path"].startswith(f"/{INPUTS}/")
        limit = self.max_upload if upload else self.max_body
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._refuse(scope, receive, send, limit)
            return
        if upload:
            await self.app(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await self._refuse(scope, receive, send, limit)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class Sessions:
    """Browser sessions without server state: the cookie is ``nonce.MAC(token, nonce)``, the CSRF
    token ``MAC(token, "csrf", nonce)``. Both die when the token changes; neither reveals it."""

    def __init__(self, token: str) -> None:
        self.key = token.encode()

    def _mac(self, *parts: str) -> str:
        return hmac.new(self.key, "\0".join(parts).encode(), "sha256").hexdigest()

    def new_cookie(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac('session', nonce)}"

    def nonce_of(self, cookie: str | None) -> str | None:
        nonce, _, mac = (cookie or "").partition(".")
        if nonce and hmac.compare_digest(mac.encode(), self._mac("session", nonce).encode()):
            return nonce
        return None

    def csrf(self, nonce: str) -> str:
        return self._mac("csrf", nonce)


def create_app(
    workspace: Path,
    token: str,
    allow_private_targets: bool = False,
    max_jobs: int = 1,
    max_body: int = MAX_BODY,
    allowed_hosts: set[str] | None = None,
    public_docs: bool = False,
    max_upload: int = MAX_UPLOAD,
) -> FastAPI:
    """The API and pages over ``workspace``. ``allowed_hosts``: the names a request's ``Host``
    header may carry (``None``: any, for a service bound to a public address behind its own name)."""
    if not token:
        raise ValueError("the service needs a token")
    workspace = workspace.resolve()
    store = JobStore(workspace / "jobs.sqlite")
    supervisor = Supervisor(store, workspace, max_jobs)
    releases_dir = workspace / "releases"
    sessions = Sessions(token)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        supervisor.start()
        yield
        supervisor.stop()

    app = FastAPI(title="corpusmill", version=__version__, lifespan=lifespan, docs_url=None, openapi_url=None)
    bearer = HTTPBearer(auto_error=False)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with each error's key path and message (the input is not echoed back)."""
        detail = [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    def valid(given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), token.encode())

    def session_nonce(request: Request) -> str | None:
        return sessions.nonce_of(request.cookies.get(SESSION_COOKIE))

    def authorised(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
    ) -> None:
        """The bearer token; or a session cookie, with the session's CSRF token on a request that
        changes state; or, for a ``GET``, the ``?token=`` of the printed link."""
        if credentials is not None and valid(credentials.credentials):
            return
        nonce = session_nonce(request)
        if nonce is None:
            if request.method == "GET" and valid(request.query_params.get("token")):
                return
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
        if request.method not in SAFE_METHODS:
            given = request.headers.get("x-csrf-token", "")
            if not hmac.compare_digest(given.encode(), sessions.csrf(nonce).encode()):
                raise HTTPException(403, "missing or wrong CSRF token (X-CSRF-Token)")

    @app.middleware("http")
    async def host_and_session(request: Request, call_next):  # type: ignore[no-untyped-def]
        """Refuse a ``Host`` the service is not bound as (DNS rebinding); a valid ``?token=`` on a
        ``GET`` becomes a session cookie, so a browser opened on the printed URL stays signed in."""
        host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
        if allowed_hosts is not None and host not in allowed_hosts:
            return JSONResponse({"detail": f"Host {host!r} is not this service"}, status_code=421)
        if request.method == "GET" and valid(request.query_params.get("token")) and session_nonce(request) is None:
            if "text/html" in request.headers.get("accept", ""):  # a browser: the token leaves the address bar
                query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
            else:
                response = await call_next(request)
            set_session(response)
            return response
        return await call_next(request)

    def set_session(response: Any) -> None:
        response.set_cookie(SESSION_COOKIE, sessions.new_cookie(), httponly=True, samesite="strict")

    app.add_middleware(BodyLimit, max_body=max_body, max_upload=max_upload)
    docs_guard = [] if public_docs else [Depends(authorised)]
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/swagger/{name}", include_in_schema=False)
    def swagger_asset(name: Literal["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"]) -> FileResponse:
        return FileResponse(str(SWAGGER / name))

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_guard)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=docs_guard)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="corpusmill API",
            swagger_js_url="/swagger/swagger-ui-bundle.js",
            swagger_css_url="/swagger/swagger-ui.css",
            swagger_favicon_url="/swagger/favicon-32x32.png",
        )

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.post("/jobs", status_code=201, dependencies=[Depends(authorised)])
    def submit(job: JobRequest) -> dict[str, Any]:
        given = job.config if job.config is not None else parse_yaml_config(job.config_yaml or "")
        config = validate(job.kind, given, "config" if job.config is not None else "config_yaml")
        return job_view(store.get(store.add(job.kind, config)))  # type: ignore[arg-type]

    @app.get("/jobs", dependencies=[Depends(authorised)])
    def jobs() -> list[dict[str, Any]]:
        return [job_view(job) for job in store.all()]

    @app.get("/jobs/{job_id}", dependencies=[Depends(authorised)])
    def job(job_id: str) -> dict[str, Any]:
        found = _job(job_id)
        return {**job_view(found), "config": found["config"]}

    @app.get("/jobs/{job_id}/log", dependencies=[Depends(authorised)], response_class=PlainTextResponse)
    def job_log(job_id: str) -> str:
        _job(job_id)
        path = workspace / "jobs" / job_id / "log.txt"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    @app.post("/jobs/{job_id}/rerun", status_code=201, dependencies=[Depends(authorised)])
    def rerun(job_id: str) -> dict[str, Any]:
        """The job's config submitted again (checked again: the workspace may have changed)."""
        earlier = _job(job_id)
        config = validate(earlier["kind"], earlier["config"])
        return job_view(store.get(store.add(earlier["kind"], config)))  # type: ignore[arg-type]

    @app.delete("/jobs/{job_id}", dependencies=[Depends(authorised)])
    def cancel(job_id: str) -> dict[str, Any]:
        _job(job_id)
        if not supervisor.cancel(job_id):
            raise HTTPException(409, "job already finished")
        return job_view(_job(job_id))

    @app.get(f"/{INPUTS}", dependencies=[Depends(authorised)])
    def inputs() -> list[dict[str, Any]]:
        """The workspace's input files with size and detected format; configs name them
        ``inputs/<name>``."""
        return list_inputs(workspace)

    @app.put(f"/{INPUTS}/{{name}}", status_code=201, dependencies=[Depends(authorised)])
    async def upload(name: str, request: Request, replace: bool = False) -> dict[str, Any]:
        """Store the request body as ``inputs/<name>`` (the name sanitised; the stored one is
        returned). An existing file is kept unless ``replace``: earlier builds' checksums name it."""
        stored = sanitised_name(name)
        if not stored:
            raise HTTPException(422, "no usable file name (letters, digits, . _ -)")
        target = workspace / INPUTS / stored
        if target.exists() and not replace:
            raise HTTPException(409, f"inputs/{stored} exists (upload with ?replace=true to replace it)")
        try:
            size = await save_upload(request.stream(), target, max_upload)
        except UploadTooLarge:
            raise HTTPException(413, f"upload over {max_upload} bytes") from None
        return next(entry for entry in list_inputs(workspace) if entry["name"] == stored) | {"bytes": size}

    @app.get("/releases", dependencies=[Depends(authorised)])
    def releases() -> list[dict[str, Any]]:
        return release_list()

    def release_list() -> list[dict[str, Any]]:
        out = []
        for manifest in sorted(releases_dir.glob("*/*/manifest.json")):
            data = json.loads(manifest.read_text(encoding="utf-8"))
            out.append(
                {
                    "name": data["name"],
                    "version": data["version"],
                    "built_at": data["built_at"],
                    "splits": {s: i["records"] for s, i in data["splits"].items()},
                }
            )
        return out

    @app.get("/releases/{name}/{version}", dependencies=[Depends(authorised)])
    def release(name: str, version: str) -> dict[str, Any]:
        directory = _release(name, version)
        return {
            "manifest": json.loads((directory / "manifest.json").read_text(encoding="utf-8")),
            "card": (directory / "README.md").read_text(encoding="utf-8"),
        }

    @app.get("/releases/{name}/{version}/records", dependencies=[Depends(authorised)])
    def release_records(
        name: str,
        version: str,
        split: str = "train",
        config: str = "",
        q: Annotated[str, Query(max_length=200)] = "",
        label: str = "",
        source: str = "",
        min_chars: Annotated[int | None, Query(ge=0)] = None,
        max_chars: Annotated[int | None, Query(ge=0)] = None,
        augmented: bool | None = None,
        offset: Offset = 0,
        limit: Limit = 50,
    ) -> dict[str, Any]:
        """One page of a split's records (of one of its configs), filtered server-side."""
        wanted = browse.RecordFilter(q, label, source, min_chars, max_chars, augmented)
        return paged(browse.records_page, _release(name, version), split, wanted, offset, limit, config).to_dict()

    def paged(read: Callable[..., browse.Page], *args: Any) -> browse.Page:
        """A page from one of :mod:`browse`'s readers; a split, config or step the release does
        not have is a 404."""
        try:
            return read(*args)
        except KeyError as exc:
            raise HTTPException(404, f"this release has no split, config or step {exc.args[0]!r}") from None

    @app.get("/releases/{name}/{version}/records/{record_id:path}", dependencies=[Depends(authorised)])
    def release_record(name: str, version: str, record_id: Annotated[str, Path_(max_length=300)]) -> dict[str, Any]:
        """One record with its split, scores and provenance, its parent and its derived records."""
        return story(_release(name, version), record_id)

    def story(directory: Path, record_id: str) -> dict[str, Any]:
        try:
            return browse.record_story(directory, record_id)
        except KeyError:
            raise HTTPException(404, "no record with this id in this release") from None

    @app.get("/releases/{name}/{version}/rejects", dependencies=[Depends(authorised)])
    def release_rejects(name: str, version: str) -> list[dict[str, Any]]:
        """Each step that rejected records, with its counts per reason."""
        return browse.reject_counts(browse.manifest_of(_release(name, version)))

    @app.get("/releases/{name}/{version}/rejects/{step}", dependencies=[Depends(authorised)])
    def release_step_rejects(
        name: str,
        version: str,
        step: str,
        reason: str = "",
        offset: Offset = 0,
        limit: Limit = 20,
    ) -> dict[str, Any]:
        """A step's rejected records (of one reason), each with its reason and scores."""
        return paged(browse.rejects_page, _release(name, version), step, reason, offset, limit).to_dict()

    @app.get("/releases/{name}/{version}/augmented", dependencies=[Depends(authorised)])
    def release_augmented(
        name: str,
        version: str,
        split: str = "train",
        offset: Offset = 0,
        limit: Limit = 20,
    ) -> dict[str, Any]:
        """Augmented records beside the parent each came from, with how it was made."""
        return paged(browse.augmented_pairs, _release(name, version), split, offset, limit).to_dict()

    @app.get("/releases/{name}/{version}/discarded", dependencies=[Depends(authorised)])
    def release_discarded(
        name: str,
        version: str,
        split: str = "train",
        offset: Offset = 0,
        limit: Limit = 20,
    ) -> dict[str, Any]:
        """Records whose augmenter discarded variants of them, with those variants and reasons."""
        return paged(browse.discarded_variants, _release(name, version), split, offset, limit).to_dict()

    @app.get("/releases/{name}/{version}/compare/{other}", dependencies=[Depends(authorised)])
    def release_compare(name: str, version: str, other: str) -> dict[str, Any]:
        """What changed from ``version`` to ``other``: records added, removed, changed and moved
        between splits, label counts per split, and the config diff."""
        return browse.compare_releases(_release(name, version), _release(name, other))

    @app.get("/releases/{name}/{version}/files/{path:path}", dependencies=[Depends(authorised)])
    def release_file(name: str, version: str, path: str) -> FileResponse:
        directory = _release(name, version)
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        if path != "manifest.json" and path not in manifest["files"]:
            raise HTTPException(404, "no such file in this release")
        target = (directory / path).resolve()
        if not target.is_relative_to(directory) or not target.is_file():
            raise HTTPException(404, "no such file in this release")
        headers = {}
        if path in manifest["files"]:
            headers["X-Checksum-Sha256"] = manifest["files"][path]["sha256"]
        return FileResponse(target, headers=headers)

    @app.get("/runs", dependencies=[Depends(authorised)])
    def runs() -> list[dict[str, Any]]:
        """Training runs in the workspace (train jobs' and any ``<dir>/report.json``) with their
        test metrics."""
        return browse.training_runs(workspace)

    @app.get("/runs/{run:path}/files/{path}", dependencies=[Depends(authorised)])
    def run_file(run: str, path: str) -> FileResponse:
        """A run's report or plot (``report.md``, ``report.json``, ``*.png``)."""
        directory = _run(run)
        if not (path in ("report.md", "report.json") or path.endswith(".png")) or "/" in path:
            raise HTTPException(404, "no such file in this run")
        target = (directory / path).resolve()
        if not target.is_relative_to(directory) or not target.is_file():
            raise HTTPException(404, "no such file in this run")
        return FileResponse(target)

    def _job(job_id: str) -> dict[str, Any]:
        found = store.get(job_id) if job_id.isalnum() else None
        if found is None:
            raise HTTPException(404, "no such job")
        return found

    def _release(name: str, version: str) -> Path:
        if not (SAFE_NAME.match(name) and SAFE_NAME.match(version)) or ".." in (name + version):
            raise HTTPException(404, "no such release")
        directory = (releases_dir / name / version).resolve()
        if not directory.is_relative_to(releases_dir.resolve()) or not (directory / "manifest.json").exists():
            raise HTTPException(404, "no such release")
        return directory

    def _run(run: str) -> Path:
        """A run named as :func:`browse.training_runs` lists it, and nothing else."""
        if run not in {entry["run"] for entry in browse.training_runs(workspace)}:
            raise HTTPException(404, "no such training run")
        return (workspace / run).resolve()

    def job_view(job: dict[str, Any]) -> dict[str, Any]:
        view = {
            key: job[key]
            for key in ("id", "kind", "state", "created_at", "started_at", "finished_at", "error", "result", "attempts")
        }
        if job["kind"] == "build":
            config = BuildConfig.model_validate(job["config"])  # validated at submission
            config.base_dir = workspace
            view["progress"] = LocalExecutor.progress_of(config.resolved_work_dir)
        return view

    def validate(kind: str, config: dict[str, Any], field: str = "config") -> dict[str, Any]:
        deep = nesting_depth_over(config, MAX_NESTING)
        if deep is not None:
            raise _invalid(deep, f"nested deeper than {MAX_NESTING} levels", field)
        if kind == "build":
            return validate_build(config, field)
        if kind == "crawl":
            out = config.get("out")
            if not isinstance(out, str) or not SAFE_NAME.match(out):
                raise _invalid("out", "a file name for the crawl's records (letters, digits, . _ -)")
            try:
                options = CrawlOptions.model_validate({k: v for k, v in config.items() if k != "out"})
            except ValidationError as exc:
                err = exc.errors()[0]
                raise _invalid(dotted_path(err["loc"]), err["msg"]) from None
            guard_crawl(options, "")
            return {**options.model_dump(mode="json"), "block_private_targets": not allow_private_targets, "out": out}
        try:
            train_job = TrainJob.model_validate(config)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise _invalid(dotted_path(err["loc"]), err["msg"]) from None
        for key, value in path_values(train_job):
            if outside(workspace, workspace, value):
                raise _invalid(key, "must stay inside the workspace (after following symlinks)")
        name, version = train_job.release.split("/")
        _release(name, version)
        return train_job.model_dump()

    def validate_build(config: dict[str, Any], field: str) -> dict[str, Any]:
        """The build config as every other config is checked, then: every path inside the
        workspace, and every crawl source through the one target guard.

        A ``steps:`` list is first turned into sections, so the release directory and the crawl
        guard below are applied to every config, whichever form the client wrote, and the job
        stores the sections form."""
        origin: dict[str, str] = {}
        if "steps" in config:
            try:
                config, origin = sections_from_steps(config, "config")
            except ConfigError as exc:
                raise _invalid(exc.path, exc.message, field) from None
        release_spec = config.get("release")
        if isinstance(release_spec, dict):
            config = {**config, "release": {**release_spec, "output_dir": "releases"}}
        try:
            parsed = parse_config(config, "config", workspace, workspace=workspace)
            crawls = [(key, model) for key, model in parsed.params_models() if isinstance(model, CrawlOptions)]
        except ConfigError as exc:
            told = from_step_list(exc, origin)
            raise _invalid(told.path, told.message, field) from None
        for key, options in crawls:
            guard_crawl(options, key)
        if allow_private_targets:
            return config
        sources = [
            {**source, "block_private_targets": True}
            if issubclass(get_step("source", source["type"]).Params, CrawlOptions)
            else source
            for source in config["sources"]
        ]
        return {**config, "sources": sources}

    def guard_crawl(options: CrawlOptions, key: str) -> None:
        """One guard for every crawl the service would run, whatever job it comes in: no shared
        Redis (a client must not point the service at a store it then reads from), and no start
        URL or sitemap inside the operator's network (each request and redirect is checked again
        by ``PrivateTargetGuardMiddleware`` while crawling)."""
        prefix = f"{key}." if key else ""
        if options.redis is not None:
            raise _invalid(f"{prefix}redis", "shared crawls are started from the command line, not submitted")
        if allow_private_targets:
            return
        for url in options.start_urls + options.sitemaps:
            address = private_address(urlsplit(url).hostname or "")
            if address:
                raise HTTPException(
                    403,
                    f"{prefix}start_urls: crawl target {url} resolves to {address} (loopback, private, "
                    "link-local or metadata); the operator has not set allow_private_targets",
                )

    add_pages(
        app,
        Site(
            workspace=workspace,
            sessions=sessions,
            session_cookie=SESSION_COOKIE,
            valid_token=valid,
            authorised=authorised,
            set_session=set_session,
            jobs=store.all,
            job=_job,
            job_view=job_view,
            release_dir=_release,
            release_list=release_list,
            paged=paged,
            story=story,
            run_dir=_run,
        ),
    )
    return app
