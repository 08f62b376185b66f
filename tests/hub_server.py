"""A Hugging Face Hub-compatible endpoint on 127.0.0.1, answering what ``hf_hub_download`` asks.

huggingface_hub resolves a file with ``HEAD {endpoint}/{owner}/{repo}/resolve/{revision}/{file}``
and needs, on a 200: ``X-Repo-Commit`` (the commit the revision points at, which names the
snapshot folder of its cache), ``ETag`` (which names the blob; the Hub gives an LFS file's
sha256) and ``Content-Length``; then it GETs the same address. Errors are told apart by the
``X-Error-Code`` header of a 404: ``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``.

    repos = {"owner/name": {"main": ("<40 hex>", {"model.safetensors": b"..."})}}
    with HubServer(repos) as hub:
        env = {"HF_ENDPOINT": hub.endpoint}
        hub.requests  # [("HEAD", "/owner/name/resolve/main/model.safetensors"), ("GET", ...)]

A revision is asked for by its name (a branch or a tag) or by its commit's 40 hex digits.
"""

from __future__ import annotations

import hashlib
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

# repo -> revision name -> (commit, {file name: bytes})
Repos = dict[str, dict[str, tuple[str, dict[str, bytes]]]]
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class HubServer:
    def __init__(self, repos: Repos):
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def resolve(self, repo: str, revision: str, name: str) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for one file at one revision."""
        revisions = self.repos.get(repo)
        if revisions is None:
            return 404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found"
        found: Optional[tuple[str, dict[str, bytes]]] = revisions.get(revision) or next(
            (entry for entry in revisions.values() if entry[0] == revision), None
        )
        if found is None:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b"Invalid rev id"
        commit, files = found
        if name not in files:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b"Entry not found"
        data = files[name]
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, data

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(server: HubServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, send_body: bool) -> None:
            path = urllib.parse.urlsplit(self.path).path
            server.requests.append((self.command, urllib.parse.unquote(path)))
            match = _RESOLVE.match(path)
            if match is None:
                status, headers, body = 404, {}, b"not found"
            else:
                repo, revision, name = (urllib.parse.unquote(part) for part in match.groups())
                status, headers, body = server.resolve(repo, revision, name)
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            if send_body:
                self.wfile.write(body)
            self.wfile.flush()

    return Handler
