"""A static file server on 127.0.0.1 for the demo site (and the tests' sites)."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Server(ThreadingHTTPServer):
    # http.server's default backlog of 5 stalls any crawler above ~16 concurrent requests.
    request_queue_size = 1024
    daemon_threads = True


class _Handler(SimpleHTTPRequestHandler):
    """Serves files; ``{origin}`` in a sitemap becomes this server's own origin."""

    def log_message(self, format: str, *args: object) -> None:
        return

    def send_head(self):  # type: ignore[no-untyped-def]
        if self.path.split("?")[0].endswith("sitemap.xml"):
            path = Path(self.translate_path(self.path))
            if path.is_file():
                host, port = self.server.server_address[:2]
                body = path.read_text(encoding="utf-8").replace("{origin}", f"http://{host}:{port}").encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return None
        return super().send_head()


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free loopback port; yields the base URL (``http://127.0.0.1:PORT/``)."""
    handler = functools.partial(_Handler, directory=str(directory))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="corpusmill-demo-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
