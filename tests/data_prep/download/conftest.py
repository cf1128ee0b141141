"""A local HTTP server for the download tests: fixture tarballs on 127.0.0.1, port 0.

Each file has a plan of behaviours, one per request (the last one repeats), such as
'drop' (full Content-Length, connection closed after half the bytes) or 'ignore_range+drop'.
Every reply of a file carries an ETag and a Last-Modified derived from its bytes ('no_etag':
Last-Modified only; 'no_validator': neither), and a Range request whose If-Range does not match
them gets the whole file (200), as RFC 9110 says.
The `mirror` fixture serves small devkit, data and imagenet tarballs; `serve(folder)` any folder.
"""
from __future__ import annotations

import email.utils
import hashlib
import io
import os
import socket
import struct
import tarfile
import threading
import time
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from data_prep.download import RECORDS_NAME, download
from data_prep.download.http import save_validator, validator_path
from data_prep.sources import DATA_TARBALL, DEVKIT_TARBALL, IMAGENET_TARBALL
from decathlon.data import TARGET_DOMAINS



@dataclass
class Mirror:
    """What the server serves and how; `requests` logs (file name, Range header, status)."""
    files: dict                                   # file name -> bytes
    plans: dict = field(default_factory=dict)     # file name -> list of behaviours
    requests: list = field(default_factory=list)
    url: str = ""
    stall_seconds: float = 3.0                    # how long a 'stall' request hangs

    def behaviour(self, name: str) -> set:
        plan = self.plans.get(name, ["normal"])
        return set((plan.pop(0) if len(plan) > 1 else plan[0]).split("+"))


def etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


def last_modified(data: bytes) -> str:
    return email.utils.formatdate(1_600_000_000 + int(hashlib.sha256(data).hexdigest()[:6], 16), usegmt=True)


def _validators(data: bytes, flags: set) -> dict:
    if "no_validator" in flags:
        return {}
    return {"Last-Modified": last_modified(data), **({} if "no_etag" in flags else {"ETag": etag(data)})}


def _handler(mirror: Mirror) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            name, wanted, if_range = self.path.lstrip("/"), self.headers.get("Range"), self.headers.get("If-Range")
            flags, data = mirror.behaviour(name), mirror.files.get(name)
            headers, body = {"Content-Type": "application/x-tar"}, data
            if "stall" in flags:
                mirror.requests.append((name, wanted, None))
                time.sleep(mirror.stall_seconds)
                return
            status = next((int(code) for code in ("204", "401", "403", "404", "503") if code in flags), None)
            if status or data is None:
                status, body = status or 404, b"no"
            elif "html" in flags:
                status, body = 200, b"<html><body><form>Log in to download</form></body></html>"
                headers["Content-Type"] = "text/html; charset=utf-8"
            elif wanted and "ignore_range" not in flags and if_range is not None \
                    and if_range not in _validators(data, flags).values():
                status = 200  # If-Range names another version: the whole file
            elif wanted and "ignore_range" not in flags:
                start = 0 if "wrong_range" in flags else int(wanted.removeprefix("bytes=").removesuffix("-"))
                if start >= len(data):
                    status, body, headers["Content-Range"] = 416, b"", f"bytes */{len(data)}"
                else:
                    status, body = 206, data[start:]
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            else:
                status = 200
            if data is not None and status in (200, 206):
                headers.update(_validators(data, flags))
            mirror.requests.append((name, wanted, status))
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body[:len(body) // 2] if flags & {"drop", "reset"} else body)
            if "reset" in flags:  # close with a TCP reset instead of an orderly end
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                os.close(self.connection.detach())

    return Handler


@pytest.fixture
def serve():
    """serve(folder or {name: bytes}) -> a Mirror running on 127.0.0.1, stopped after the test."""
    servers = []

    def start(files) -> Mirror:
        if isinstance(files, Path):
            files = {path.name: path.read_bytes() for path in files.iterdir()}
        mirror = Mirror(dict(files))
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror))
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
        mirror.url = f"http://127.0.0.1:{server.server_address[1]}/"
        return mirror

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _random_member(tar: tarfile.TarFile, name: str, size: int, seed: int) -> None:
    data = hashlib.shake_256(f"{name}{seed}".encode()).digest(size)  # incompressible, like a JPEG
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def mirror(tmp_path, serve) -> Mirror:
    """Small but real tarballs shaped like the three downloads (a few KB each)."""
    folder = tmp_path / "served"
    folder.mkdir()
    with tarfile.open(folder / DEVKIT_TARBALL, "w:gz") as devkit:
        for n, domain in enumerate(TARGET_DOMAINS[:3]):
            _random_member(devkit, f"decathlon-1.0/annotations/{domain}_train.json", 1500, n)
    with tarfile.open(folder / DATA_TARBALL, "w:gz") as data:
        for n, domain in enumerate(TARGET_DOMAINS):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as tar:
                _random_member(tar, f"{domain}/train/000001.jpg", 700, n)
            info = tarfile.TarInfo(f"{domain}.tar")
            info.size = inner.tell()
            inner.seek(0)
            data.addfile(info, inner)
    with tarfile.open(folder / IMAGENET_TARBALL, "w") as imagenet:
        for n in range(3):
            _random_member(imagenet, f"data/imagenet12/train/{n + 1:06d}.jpg", 900, n)
    return serve(folder)


ALL = (DEVKIT_TARBALL, DATA_TARBALL, IMAGENET_TARBALL)


def _download(dest: Path, mirror, **options) -> dict:
    options = {"mirror": mirror.url, "progress": False, "retries": 3, "backoff_seconds": 0.001,
               "timeout": 5, **options}
    return download(dest, **options)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dest_with_part(tmp_path: Path, name: str, data: bytes, mirror=None) -> Path:
    """DEST holding `data` as <name>.part, as an interrupted run leaves it: with the validator
    of the file `mirror` serves now recorded beside it (none without a mirror)."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / f"{name}.part").write_bytes(data)
    if mirror is not None:
        served = mirror.files[name]
        save_validator(dest / f"{name}.part", mirror.url + name, etag(served), last_modified(served))
    return dest


def _assert_complete(dest: Path, mirror, names=ALL) -> None:
    records = json.loads((dest / RECORDS_NAME).read_text())
    for name in names:
        assert (dest / name).read_bytes() == mirror.files[name], name
        assert records[name]["size"] == len(mirror.files[name])
        assert records[name]["sha256"] == _sha(mirror.files[name])
        assert not (dest / f"{name}.part").exists() and not (dest / f"{name}.mismatch").exists()
        assert not validator_path(dest / f"{name}.part").exists()


def _records(dest: Path) -> dict:
    path = dest / RECORDS_NAME
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.fixture
def fetch():
    """The download tests' helpers: download (quiet, fast retries, from a mirror), sha,
    dest_with_part, assert_complete, records."""
    return SimpleNamespace(download=_download, sha=_sha, dest_with_part=_dest_with_part,
                           assert_complete=_assert_complete, records=_records)
