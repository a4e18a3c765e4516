"""The HTTP API: crawl, build and train jobs, releases, with a bearer token and target guards.

Threat model: whoever holds the token may run jobs, read their logs and download releases; the
token is the only credential (``Authorization: Bearer``, or once through ``?token=`` which sets a
``SameSite=Strict`` cookie for the browser). A token holder still cannot reach outside the
workspace (every path-typed config value is confined after symlinks), the operator's network
(every crawl target, submitted or redirected, goes through one guard), another Redis (refused),
or the server's memory (bodies are capped by the bytes actually read, configs by nesting depth).
Without a token nobody reaches anything but ``/health``; on loopback the ``Host`` header must
name the bound address, so a web page cannot reach the service by DNS rebinding.

(No ``from __future__ import annotations`` here: FastAPI resolves the dependency annotations.)
"""

import hmac
import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corpusmill import __version__
from corpusmill.config import MAX_NESTING, SAFE_NAME, BuildConfig, from_step_list, parse_config, sections_from_steps
from corpusmill.errors import ConfigError
from corpusmill.executor import LocalExecutor
from corpusmill.registry import get_step
from corpusmill.schema import dotted_path
from corpusmill.service.jobs import JobStore, Supervisor
from corpusmill.validators import PathOrName, nesting_depth_over, outside, path_values
from crawlers.middlewares import private_address
from crawlers.options import CrawlOptions

MAX_BODY = 1_000_000
TOKEN_COOKIE = "corpusmill_token"


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["crawl", "build", "train"]
    config: dict[str, Any]
    """build: the build config schema; crawl: crawl options plus ``out`` (a file name);
    train: ``release`` (``name/version``), ``task``, ``model`` and an optional ``train`` config."""


class TrainJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
    task: Literal["classification", "multi-task", "causal-lm"] = "classification"
    model: PathOrName = "minilm"
    train: dict[str, Any] = {}


def _invalid(path: str, message: str) -> HTTPException:
    loc = ["body", "config", *[p for p in path.replace("[", ".").replace("]", "").split(".") if p]]
    return HTTPException(422, detail=[{"loc": loc, "msg": message, "type": "value_error"}])


class BodyLimit:
    """Refuses a request body over ``max_body`` bytes by counting what is actually received,
    whatever ``Content-Length`` says (a chunked body has none): the body is read up to the limit
    before the app sees it, then replayed."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._refuse(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await self._refuse(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": f"request body over {self.max_body} bytes"}, status_code=413)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def create_app(
    workspace: Path,
    token: str,
    allow_private_targets: bool = False,
    max_jobs: int = 1,
    max_body: int = MAX_BODY,
    allowed_hosts: set[str] | None = None,
    public_docs: bool = False,
) -> FastAPI:
    """The API over ``workspace``. ``allowed_hosts``: the names a request's ``Host`` header may
    carry (``None``: any, for a service bound to a public address behind its own name)."""
    if not token:
        raise ValueError("the service needs a token")
    workspace = workspace.resolve()
    store = JobStore(workspace / "jobs.sqlite")
    supervisor = Supervisor(store, workspace, max_jobs)
    releases_dir = workspace / "releases"

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

    def authorised(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
    ) -> None:
        given = credentials.credentials if credentials else None
        if not (valid(given) or valid(request.cookies.get(TOKEN_COOKIE)) or valid(request.query_params.get("token"))):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.middleware("http")
    async def host_and_cookie(request: Request, call_next):  # type: ignore[no-untyped-def]
        """Refuse a ``Host`` the service is not bound as (DNS rebinding); a valid ``?token=``
        becomes a cookie, so a browser opened on the printed URL stays signed in."""
        host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
        if allowed_hosts is not None and host not in allowed_hosts:
            return JSONResponse({"detail": f"Host {host!r} is not this service"}, status_code=421)
        response = await call_next(request)
        if valid(request.query_params.get("token")):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    app.add_middleware(BodyLimit, max_body=max_body)
    docs_guard = [] if public_docs else [Depends(authorised)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_guard)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=docs_guard)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="corpusmill API")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.post("/jobs", status_code=201, dependencies=[Depends(authorised)])
    def submit(job: JobRequest) -> dict[str, Any]:
        config = validate(job.kind, job.config)
        return job_view(store.get(store.add(job.kind, config)))  # type: ignore[arg-type]

    @app.get("/jobs", dependencies=[Depends(authorised)])
    def jobs() -> list[dict[str, Any]]:
        return [job_view(job) for job in store.all()]

    @app.get("/jobs/{job_id}", dependencies=[Depends(authorised)])
    def job(job_id: str) -> dict[str, Any]:
        return job_view(_job(job_id))

    @app.get("/jobs/{job_id}/log", dependencies=[Depends(authorised)], response_class=PlainTextResponse)
    def job_log(job_id: str) -> str:
        _job(job_id)
        path = workspace / "jobs" / job_id / "log.txt"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    @app.delete("/jobs/{job_id}", dependencies=[Depends(authorised)])
    def cancel(job_id: str) -> dict[str, Any]:
        _job(job_id)
        if not supervisor.cancel(job_id):
            raise HTTPException(409, "job already finished")
        return job_view(_job(job_id))

    @app.get("/releases", dependencies=[Depends(authorised)])
    def releases() -> list[dict[str, Any]]:
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

    def validate(kind: str, config: dict[str, Any]) -> dict[str, Any]:
        deep = nesting_depth_over(config, MAX_NESTING)
        if deep is not None:
            raise _invalid(deep, f"nested deeper than {MAX_NESTING} levels")
        if kind == "build":
            return validate_build(config)
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

    def validate_build(config: dict[str, Any]) -> dict[str, Any]:
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
                raise _invalid(exc.path, exc.message) from None
        release_spec = config.get("release")
        if isinstance(release_spec, dict):
            config = {**config, "release": {**release_spec, "output_dir": "releases"}}
        try:
            parsed = parse_config(config, "config", workspace, workspace=workspace)
            crawls = [(key, model) for key, model in parsed.params_models() if isinstance(model, CrawlOptions)]
        except ConfigError as exc:
            told = from_step_list(exc, origin)
            raise _invalid(told.path, told.message) from None
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

    return app
