"""Download a file over HTTP(S) with resume, a progress bar and size/md5/sha256 checks.

The bytes go to ``<dest>.part`` beside the destination. An interrupted
transfer keeps that file, and the next attempt (in the same call or a later
run) asks the server only for the rest with an HTTP ``Range`` request; a server
that ignores ``Range`` (answers 200) makes the transfer start over cleanly.
The destination appears only once every byte is there and checked (one
``os.replace``), so it is never half-written.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Union

from tqdm import tqdm

from vggspec.errors import DownloadError
from vggspec.fileio import destination_problem, file_digest

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 30.0
USER_AGENT = "vggspec (+https://pypi.org/project/vggspec/)"

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def cache_home() -> Path:
    """Where vggspec keeps downloads: ``$VGGSPEC_HOME``, else ``~/.cache/vggspec``."""
    return Path(os.environ.get("VGGSPEC_HOME") or "~/.cache/vggspec").expanduser()


def check_cache_folder(folder: Union[str, Path]) -> None:
    """DownloadError when ``folder`` (one under :func:`cache_home`) cannot be written, saying where it comes
    from (``VGGSPEC_HOME``, or the default when that is unset): checked before a download starts, so that a
    bad ``VGGSPEC_HOME`` is one line rather than a transfer that fails when its first byte is written."""
    problem = destination_problem(folder, folder=True)
    if problem is None:
        return
    home = os.environ.get("VGGSPEC_HOME")
    origin = f"VGGSPEC_HOME={home}" if home else "the default, ~/.cache/vggspec, as VGGSPEC_HOME is not set"
    raise DownloadError(
        f"{folder} (the download folder under {origin}): expected a writable folder, received {problem}"
    )


def partial_path(dest: Union[str, Path]) -> Path:
    """The file a download of ``dest`` grows in until it is complete: ``<dest>.part``."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def file_md5(path: Union[str, Path]) -> str:
    """The md5 of a file's bytes as 32 lowercase hex digits."""
    return file_digest(path, "md5", CHUNK_BYTES)


def file_sha256(path: Union[str, Path]) -> str:
    """The sha256 of a file's bytes as 64 lowercase hex digits."""
    return file_digest(path, "sha256", CHUNK_BYTES)


class _Interrupted(Exception):
    """The connection broke after the transfer had started; the ``.part`` file is kept."""


def download(
    url: str,
    dest: Union[str, Path],
    *,
    size: Optional[int] = None,
    md5: Optional[str] = None,
    sha256_prefix: Optional[str] = None,
    progress: bool = True,
    attempts: int = 3,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    ``size`` (bytes), ``md5`` (32 hex digits, as Keras' ``get_file``
    treats such a hash) and ``sha256_prefix`` (the first hex digits of the
    sha256, as torchvision names its files ``vgg16-397923af.pth`` and checks
    them) are checked when given. A transfer that breaks off is
    resumed up to ``attempts`` times in this call; after that the ``.part``
    file stays so that a later call resumes it. Raises :class:`DownloadError`
    with the URL and the reason, on one line; a wrong checksum also removes
    the downloaded bytes.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()  # longer than the whole file: not a prefix of it
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, dest.name, size, progress)
            break
        except _Interrupted as interruption:
            if attempt == attempts:
                kept = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"cannot download {url}: {interruption} (after {attempt} attempts; "
                    f"{kept:,} bytes kept in {part}, run again to resume)"
                ) from None
            time.sleep(0.5 * attempt)
    received_size = part.stat().st_size
    if size is not None and received_size != size:
        part.unlink()
        raise DownloadError(f"{dest.name}: expected {size:,} bytes, received {received_size:,} from {url}")
    for algorithm, expected, digest in (("md5", md5, file_md5), ("sha256", sha256_prefix, file_sha256)):
        if expected is None:
            continue
        received = digest(part)
        if not received.startswith(expected.lower()):
            part.unlink()
            what = "starting with " if len(expected) < len(received) else ""
            raise DownloadError(
                f"{dest.name}: {algorithm} expected {what}{expected.lower()}, received {received} "
                f"(downloaded from {url}; the file was removed)"
            )
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, name: str, size: Optional[int], progress: bool) -> None:
    """One request: append the missing bytes to ``part`` (or rewrite it if the server sends it all)."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset == size:
        return  # an earlier attempt got every byte; the caller checks them
    response = _request(url, part, offset)
    if response is None:
        return  # the part file already holds the whole file
    with contextlib.closing(response):
        offset, total = _body_start(response, url, part, name, size, offset)
        _receive(response, part, name, offset, total, progress)


def _request(url: str, part: Path, offset: int) -> Optional[http.client.HTTPResponse]:
    """The server's answer to a request for the bytes from ``offset`` on (all of them from 0); None when the
    server says ``part`` holds them all already. A refused resume removes ``part``."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
        return response
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            total = _total_from_content_range(error.headers.get("Content-Range", ""))
            error.close()
            if total == offset:
                return None
            part.unlink()  # not a prefix of what the server has
            raise _Interrupted("the server refused to resume; starting over") from None
        raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise DownloadError(f"cannot download {url}: {_one_line(reason)}") from None


def _body_start(
    response: http.client.HTTPResponse, url: str, part: Path, name: str, size: Optional[int], offset: int
) -> tuple[int, Optional[int]]:
    """(the byte of the file the answer's body starts at, the file's size or None when the server does not
    say); an answer that does not fit ``part`` or ``size`` removes ``part``."""
    if response.status == 206:
        start, total = _parse_content_range(response.headers.get("Content-Range", ""))
        if start != offset:  # not the part we asked for: start over without Range
            part.unlink()
            raise _Interrupted(f"the server resumed at byte {start}, not {offset}")
    else:  # 200: the whole file, whether or not we asked for a range
        length = response.headers.get("Content-Length")
        offset, total = 0, int(length) if length is not None and length.isdigit() else None
    if size is not None and total is not None and total != size:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise DownloadError(f"{name}: expected {size:,} bytes, the server at {url} reports {total:,}")
    return offset, total


def _receive(
    response: http.client.HTTPResponse, part: Path, name: str, offset: int, total: Optional[int], progress: bool
) -> None:
    """Write the body to ``part`` from byte ``offset`` on, with a progress bar; a connection that breaks or
    closes early is :class:`_Interrupted` (what arrived stays)."""
    received = 0
    with (
        open(part, "ab" if offset else "wb") as handle,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=name,
            file=sys.stderr,
            leave=False,
            disable=None if progress else True,
        ) as bar,
    ):
        try:
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                handle.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:
            raise _Interrupted(_one_line(error)) from None
    if total is not None and received < total - offset:
        raise _Interrupted(f"the connection closed after {offset + received:,} of {total:,} bytes")


def _parse_content_range(value: str) -> tuple[int, Optional[int]]:
    """``bytes START-END/TOTAL`` -> (START, TOTAL or None when the server writes ``*``)."""
    match = _CONTENT_RANGE.match(value.strip())
    if not match:
        return -1, None
    return int(match.group(1)), None if match.group(3) == "*" else int(match.group(3))


def _total_from_content_range(value: str) -> Optional[int]:
    """The total size in a 416 answer's ``bytes */TOTAL``, if the server says it."""
    match = re.match(r"^bytes \*/(\d+)$", value.strip())
    return int(match.group(1)) if match else None


def _one_line(reason: object) -> str:
    if isinstance(reason, socket.timeout):
        return f"no answer within {TIMEOUT_SECONDS:g} s"
    return " ".join(str(reason).split()) or type(reason).__name__
