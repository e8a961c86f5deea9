"""`cowdsl playground`: serve the bundle on 127.0.0.1 (built first when it is not there)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm",
                      ".mjs": "text/javascript", ".js": "text/javascript", ".json": "application/json",
                      ".whl": "application/zip", ".zip": "application/zip"}

    def log_message(self, format: str, *args: object) -> None:  # quiet: the page is the interface
        pass


def server(root: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server of ``root`` on 127.0.0.1:``port`` (0: any free port), not yet serving."""
    handler = functools.partial(_Handler, directory=str(root))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def in_background(root: Path, port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` from a daemon thread; the server (shutdown() stops it) and its URL."""
    httpd = server(root, port)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"
