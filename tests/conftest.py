"""Shared fixtures: the real data beside the repo, and small build configs."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One datasets cache per test run (subprocess tests inherit it): with the shared one, a release of
# this run loaded rows cached from an earlier run's release of the same name and config (the
# cache key of local files is built from their mtimes, the folder's name and the config).
_DATASETS_CACHE = tempfile.mkdtemp(prefix="corpusmill-tests-hf-datasets-")
os.environ["HF_DATASETS_CACHE"] = _DATASETS_CACHE
atexit.register(shutil.rmtree, _DATASETS_CACHE, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """In CI (``CI`` set; ``.ci/run`` sets it) a skipped test is a failed one: CI has
    ``../shared/data`` and every tool the tests need, so a skip there hides a broken test."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {report.longrepr}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skipped only where the folder is absent (never in CI, which has it)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing in CI")
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


def write_config(directory: Path, **sections: object) -> Path:
    """A build config in ``directory`` with sensible defaults for the sections not given."""
    config = {
        "seed": 7,
        "release": {"name": "test", "version": "1.0.0", "output_dir": "releases"},
        **sections,
    }
    path = directory / "build.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def make_config():
    return write_config


@pytest.fixture(scope="session")
def tiny_marian(shared_data, tmp_path_factory) -> tuple[Path, Path]:
    """English→German and German→English MarianMT models trained on Tatoeba (once per session)."""
    from tiny_marian import build_pair

    return build_pair(shared_data, tmp_path_factory.mktemp("marian"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A ``redis-server`` of the tests' own on 127.0.0.1 (``make test`` installs Debian's package)."""
    import shutil

    from redis_server import redis_server

    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI (the Makefile's test setup installs it)")
        pytest.skip("redis-server is not installed (make test installs it)")
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
