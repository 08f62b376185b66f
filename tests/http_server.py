"""A real HTTP server on 127.0.0.1 for download tests, serving the files of one folder.

It answers ``Range: bytes=START-[END]`` with 206 and ``Content-Range`` (unless
told to ignore ranges), can be told to cut the next transfer after N bytes
(the headers announce the full length, then the connection closes), and
records every request it gets.

    with FileServer(folder) as server:
        server.cut_next_after(1000)
        download(server.url("file.bin"), dest)
        server.requests  # [Request(path="/file.bin", range=None, status=200, sent=1000), ...]
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional


@dataclass
class Request:
    path: str
    range: Optional[str]  # the Range header as sent, None without one
    status: int
    sent: int  # body bytes written


class LocalServer:
    """An HTTP server on a free port of 127.0.0.1, serving from a background thread while in a ``with``
    block; ``handler`` is its request handler class."""

    def __init__(self, handler: type):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class FileServer(LocalServer):
    """Serve ``folder`` on a free port of 127.0.0.1 from a background thread."""

    def __init__(self, folder: Path, ignore_range: bool = False):
        self.folder = Path(folder)
        self.ignore_range = ignore_range
        self.requests: list[Request] = []
        self._cut_after: Optional[int] = None
        self._lock = threading.Lock()
        super().__init__(_handler_for(self))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def cut_next_after(self, byte_count: int) -> None:
        """Send only ``byte_count`` body bytes of the next transfer, then close the connection."""
        with self._lock:
            self._cut_after = byte_count

    def _take_cut(self) -> Optional[int]:
        with self._lock:
            cut, self._cut_after = self._cut_after, None
            return cut


def _handler_for(server: FileServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            path = server.folder / self.path.lstrip("/")
            if not self.path.lstrip("/") or not path.is_file():
                self._answer(range_header, 404, {}, b"not found")
                return
            data = path.read_bytes()
            match = re.match(r"^bytes=(\d+)-(\d*)$", range_header or "")
            if match and not server.ignore_range:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(data) - 1
                if start >= len(data):
                    self._answer(range_header, 416, {"Content-Range": f"bytes */{len(data)}"}, b"")
                    return
                end = min(end, len(data) - 1)
                self._answer(
                    range_header, 206, {"Content-Range": f"bytes {start}-{end}/{len(data)}"}, data[start : end + 1]
                )
            else:
                self._answer(range_header, 200, {}, data)

        def _answer(self, range_header: Optional[str], status: int, headers: dict, body: bytes) -> None:
            cut = server._take_cut() if status in (200, 206) else None
            self.send_response(status)
            for key, value in {
                "Content-Length": str(len(body)),
                "Accept-Ranges": "none" if server.ignore_range else "bytes",
                **headers,
            }.items():
                self.send_header(key, value)
            if cut is not None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            sent = body if cut is None else body[:cut]
            self.wfile.write(sent)
            self.wfile.flush()
            server.requests.append(Request(self.path, range_header, status, len(sent)))

    return Handler
