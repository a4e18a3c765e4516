"""The HTTP API: crawl, build and train jobs, releases, with a bearer token and target guards.

(No ``from __future__ import annotations`` here: FastAPI resolves the dependency annotations.)
"""

import hmac
import json
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corpusmill import __version__
from corpusmill.config import SAFE_NAME, load_config
from corpusmill.errors import ConfigError
from corpusmill.schema import dotted_path
from corpusmill.service.jobs import JobStore, Supervisor

MAX_BODY = 1_000_000
STAGES = ("ingest", "clean", "split", "augment")


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["crawl", "build", "train"]
    config: dict[str, Any]
    """build: the build config schema; crawl: crawl options plus ``out`` (a file name);
    train: ``release`` (``name/version``), ``task``, ``model`` and an optional ``train`` config."""


class TrainJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
    task: Literal["classification", "causal-lm"] = "classification"
    model: str = "minilm"
    train: dict[str, Any] = {}


def _invalid(path: str, message: str) -> HTTPException:
    loc = ["body", "config", *[p for p in path.replace("[", ".").replace("]", "").split(".") if p]]
    return HTTPException(422, detail=[{"loc": loc, "msg": message, "type": "value_error"}])


def create_app(
    workspace: Path, token: str | None, allow_private_targets: bool = False, max_jobs: int = 1, max_body: int = MAX_BODY
) -> FastAPI:
    workspace = workspace.resolve()
    store = JobStore(workspace / "jobs.sqlite")
    supervisor = Supervisor(store, workspace, max_jobs)
    releases_dir = workspace / "releases"

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        supervisor.start()
        yield
        supervisor.stop()

    app = FastAPI(title="corpusmill", version=__version__, lifespan=lifespan)
    bearer = HTTPBearer(auto_error=False)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with each error's key path and message (the input is not echoed back)."""
        detail = [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    def authorised(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.middleware("http")
    async def limit_body(request: Request, call_next):  # type: ignore[no-untyped-def]
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            return JSONResponse({"detail": f"request body over {max_body} bytes"}, status_code=413)
        return await call_next(request)

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
            release_spec = job["config"]["release"]
            work = workspace / ".corpusmill" / "work" / f"{release_spec['name']}-{release_spec['version']}"
            stages = {}
            for stage in STAGES:
                marker = work / stage / "_DONE.json"
                if marker.exists():
                    stages[stage] = json.loads(marker.read_text(encoding="utf-8"))["records_out"]
            view["progress"] = {"stages_done": list(stages), "records_out": stages}
        return view

    def validate(kind: str, config: dict[str, Any]) -> dict[str, Any]:
        if kind == "build":
            sources = config.get("sources")
            for index, source in enumerate(sources if isinstance(sources, list) else []):
                path = source.get("path") if isinstance(source, dict) else None
                if isinstance(path, str) and (Path(path).is_absolute() or ".." in Path(path).parts):
                    raise _invalid(f"sources[{index}].path", "must be relative to the service workspace, without ..")
            release_spec = config.get("release")
            if isinstance(release_spec, dict):
                config = {**config, "release": {**release_spec, "output_dir": "releases"}}
            with tempfile.TemporaryDirectory(dir=workspace) as tmp:
                path = Path(tmp) / "build.yaml"
                path.write_text(yaml.safe_dump(config), encoding="utf-8")
                try:
                    load_config(path)
                except ConfigError as exc:
                    raise _invalid(exc.path, exc.message) from None
            return config
        if kind == "crawl":
            from crawlers.middlewares import private_address
            from crawlers.options import CrawlOptions

            out = config.get("out")
            if not isinstance(out, str) or not SAFE_NAME.match(out):
                raise _invalid("out", "a file name for the crawl's records (letters, digits, . _ -)")
            try:
                options = CrawlOptions.model_validate({k: v for k, v in config.items() if k != "out"})
            except ValidationError as exc:
                err = exc.errors()[0]
                raise _invalid(dotted_path(err["loc"]), err["msg"]) from None
            if options.redis is not None:
                raise _invalid("redis", "shared crawls are started from the command line, not submitted")
            if not allow_private_targets:
                for url in options.start_urls + options.sitemaps:
                    address = private_address(urlsplit(url).hostname or "")
                    if address:
                        raise HTTPException(
                            403,
                            f"crawl target {url} resolves to {address} (loopback, private, "
                            "link-local or metadata); the operator has not set "
                            "allow_private_targets",
                        )
            return {**options.model_dump(mode="json"), "block_private_targets": not allow_private_targets, "out": out}
        try:
            train_job = TrainJob.model_validate(config)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise _invalid(dotted_path(err["loc"]), err["msg"]) from None
        name, version = train_job.release.split("/")
        _release(name, version)
        return train_job.model_dump()

    return app
