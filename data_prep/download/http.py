"""One file over HTTP into `<name>.part`: streamed, hashed, resumed with Range + If-Range, retried.

urllib.request from the standard library, not requests or httpx: no extra dependency, and a
Range header plus a body read in chunks are all a resumable download needs.

The bytes go to `<name>.part` and the caller renames it only once the count and checksum are
right, so a file under its final name is never a half-written one.

Which version of the file the .part holds is kept beside it in `<name>.part.json` (written
atomically when the first byte of a transfer from byte 0 arrives): the address and the
validator of that reply, its ETag (when strong) or else its Last-Modified. A retry or a rerun
asks for `Range: bytes=<size of .part>-` with `If-Range: <that validator>`, so that a server
whose file has changed since sends the whole new file instead of its tail. A .part with no
validator recorded (the server sent none, or the .part came from elsewhere or from another
address) is not resumed: the file restarts from byte 0 rather than risk joining two versions.
  * 206 Partial Content: the reply is appended; the bytes already in the .part are hashed
    first, so the sha256 covers the whole file;
  * 200 OK: the file changed since the .part was started, or the server ignores Range; the
    whole file must not be appended to the partial one: the .part is truncated and the file
    restarts from byte 0 (said aloud);
  * 416 Range Not Satisfiable: nothing lies after the .part's end. If the server gives the
    file's size and it equals the .part's, the .part is already complete (a run that stopped
    just before its rename); otherwise the .part is not a prefix of this file: restart.
A dropped connection, a timeout, a body shorter than its Content-Length or an HTTP 5xx reply is
retried with exponential backoff, resuming from the .part; anything else fails at once.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import json
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from decathlon.files import write_bytes_atomic
from data_prep.errors import PrepareError

CHUNK = 1 << 20
# The network failed, not the request: worth another try from the .part. URLError covers
# failures to connect (and timeouts before the reply); HTTP 5xx replies are re-raised as
# HTTPError, a URLError.
TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DownloadError(PrepareError):
    """A file could not be fetched or does not match its record; the message names file and URL."""


class AccessRefused(DownloadError):
    """The server wants a login or accepted terms: HTTP 401/403, or an HTML page instead of the file."""


class _ShortBody(ConnectionError):
    """The connection closed before Content-Length bytes arrived (urllib returns a short read)."""


@dataclass
class Fetched:
    size: int
    sha256: str


def say(message: str) -> None:
    print(message, file=sys.stderr)


def _bar(total: int | None, initial: int, desc: str, progress: bool) -> tqdm:
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not progress)


def file_sha256(path: Path, progress: bool = False) -> str:
    """sha256 of a file on disk, read in chunks (the tarballs are gigabytes)."""
    return _hash_file(path, progress).hexdigest()


def _hash_file(path: Path, progress: bool):
    hasher = hashlib.sha256()
    with open(path, "rb") as f, _bar(path.stat().st_size, 0, f"checking {path.name}", progress) as bar:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
            bar.update(len(chunk))
    return hasher


def validator_path(part: Path) -> Path:
    """The file beside `part` that says which version of the file it holds."""
    return part.with_name(part.name + ".json")


def save_validator(part: Path, url: str, etag: str | None, last_modified: str | None) -> None:
    """Record the version of the file at `url` that `part` holds (none known: no record)."""
    path = validator_path(part)
    if etag is None and last_modified is None:
        path.unlink(missing_ok=True)
    else:
        write_bytes_atomic(path, json.dumps({"url": url, "etag": etag, "last_modified": last_modified}) + "\n")


def _if_range(part: Path, url: str) -> str | None:
    """The If-Range value that makes a resume of `part` safe, None if there is none."""
    try:
        recorded = json.loads(validator_path(part).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(recorded, dict) or recorded.get("url") != url:
        return None
    etag, last_modified = recorded.get("etag"), recorded.get("last_modified")
    if isinstance(etag, str) and etag.startswith('"'):  # a weak ETag (W/"...") may not be used in If-Range
        return etag
    return last_modified if isinstance(last_modified, str) and last_modified else None


def fetch(url: str, part: Path, retries: int = 5, backoff_seconds: float = 1.0, timeout: float = 60.0,
          progress: bool = True) -> Fetched:
    """Bring `part` to the complete file at `url`, resuming from what it already holds.

    Retries transient failures `retries` times, waiting backoff_seconds * 2**attempt; every
    connection gets a socket `timeout` (seconds) so that a stalled server counts as a failure
    instead of hanging the run. Raises DownloadError (AccessRefused for 401/403/HTML)."""
    return _Transfer(url, Path(part), timeout, progress).run(retries, backoff_seconds)


class _Transfer:
    def __init__(self, url: str, part: Path, timeout: float, progress: bool):
        self.url, self.part, self.timeout, self.progress = url, part, timeout, progress
        self.name = part.name.removesuffix(".part")
        self.label = f"{self.name} ({url})"
        self.range_ignored = False

    def _part_size(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def run(self, retries: int, backoff_seconds: float) -> Fetched:
        attempt = 0
        while True:
            try:
                return self._attempt()
            except TRANSIENT as err:
                done, why = self._part_size(), f"{type(err).__name__}: {err}"
                if attempt >= retries:
                    ignored = (" The server answered a resume with the whole file, so every retry started again "
                               "from byte 0 (it ignores Range requests, or the file kept changing)."
                               if self.range_ignored else "")
                    raise DownloadError(f"{self.label}: transfer failed {attempt + 1} times, last with {why}; "
                                        f"{self.part} keeps {done} bytes, run again to resume.{ignored}") from None
                wait = backoff_seconds * 2 ** attempt
                attempt += 1
                say(f"{self.label}: {why}; retry {attempt} of {retries} in {wait:g} s from byte {done}")
                time.sleep(wait)

    def _attempt(self) -> Fetched:
        offset, headers = self._part_size(), {}
        if offset:
            if_range = _if_range(self.part, self.url)
            if if_range is None:
                say(f"{self.label}: nothing records which version of the file {self.part} holds (no ETag or "
                    f"Last-Modified from {self.url} kept in {validator_path(self.part)}); restarting from byte 0 "
                    "rather than risk joining two versions")
                offset = 0
            else:
                headers = {"Range": f"bytes={offset}-", "If-Range": if_range}
        try:
            response = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers),
                                              timeout=self.timeout)
        except urllib.error.HTTPError as err:
            err.close()
            return self._refused(err, offset)
        with response:
            if response.headers.get_content_type() == "text/html":
                raise AccessRefused(f"{self.label}: the server sent an HTML page (Content-Type text/html) "
                                    "instead of the file, typically a login or terms page")
            if response.status == 206:
                content_range = response.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {offset}-"):
                    raise DownloadError(f"{self.label}: asked for the bytes from {offset}, the server sent "
                                        f"Content-Range {content_range!r}; delete {self.part} to start over")
                hasher = _hash_file(self.part, progress=False) if offset else hashlib.sha256()
            elif response.status == 200:
                if offset:
                    self.range_ignored = True
                    say(f"{self.label}: the server sent the whole file (200) instead of the bytes from {offset}: "
                        f"the file changed since {self.part} was started, or the server ignores Range; "
                        f"discarding the {offset} bytes of {self.part} and restarting from byte 0")
                offset, hasher = 0, hashlib.sha256()
                save_validator(self.part, self.url, response.headers.get("ETag"),
                               response.headers.get("Last-Modified"))
            else:
                raise DownloadError(f"{self.label}: unexpected HTTP {response.status} {response.reason}")
            length = response.headers.get("Content-Length")
            return self._stream(response, offset, None if length is None else offset + int(length), hasher)

    def _refused(self, err: urllib.error.HTTPError, offset: int) -> Fetched:
        if err.code == 416 and offset:
            total = re.fullmatch(r"bytes \*/(\d+)", err.headers.get("Content-Range", ""))
            if total and int(total[1]) == offset:
                say(f"{self.label}: {self.part} already holds all {offset} bytes (HTTP 416 for bytes={offset}-)")
                return Fetched(offset, file_sha256(self.part))
            say(f"{self.label}: HTTP 416 for bytes={offset}-: {self.part} does not fit the file on the server "
                f"(size {total[1] if total else 'not given'}); restarting from byte 0")
            self.part.unlink()
            return self._attempt()
        if err.code in (401, 403):
            raise AccessRefused(f"{self.label}: HTTP {err.code} {err.reason}")
        if err.code >= 500:
            raise err  # the server's trouble, maybe passing: retried
        raise DownloadError(f"{self.label}: HTTP {err.code} {err.reason}")

    def _stream(self, response, offset: int, total: int | None, hasher) -> Fetched:
        size = offset
        try:
            with open(self.part, "ab" if offset else "wb") as out, \
                    _bar(total, offset, self.name, self.progress) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    hasher.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
        except OSError as err:
            if err.errno not in _DISK_FULL:
                raise
            raise DownloadError(f"{self.label}: disk full while writing {self.part} ({err.strerror}); "
                                f"free space in {self.part.parent} and run again to resume from the "
                                f"{self._part_size()} bytes kept") from None
        if total is not None and size != total:
            raise _ShortBody(f"the connection closed after {size} of {total} bytes")
        return Fetched(size, hasher.hexdigest())
