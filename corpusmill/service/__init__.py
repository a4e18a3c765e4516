"""corpusmill as a service: an HTTP API over a SQLite job queue and worker processes."""

from corpusmill.service.app import create_app

__all__ = ["create_app"]
