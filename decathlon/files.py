"""Files, for every stage: atomic writes, the one sha256 of a file, output checks, folder locks.

Atomic writes go to a temporary file in the same folder, renamed over the target: a reader
(or a rerun after Ctrl-C) sees either the old file or the complete new one, never a
half-written one. Every writer of manifests, checkpoints, tables, plots and submission
files goes through here. Output folders are checked before work starts (`ensure_dir`), and
a lock keeps two processes out of one folder (`folder_lock`).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success it replaces `path`, on any
    failure it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path, data: bytes | str) -> Path:
    """Write text or bytes to `path` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def write_json_atomic(path, obj) -> None:
    """Write JSON atomically; a NaN or infinity is refused (ValueError): JSON has no such
    tokens, and readers would choke on them."""
    write_bytes_atomic(path, json.dumps(obj, indent=1, allow_nan=False))


def parse_json(data, where, expected: str, error: type = ValueError, hint: str = ""):
    """JSON from `data` (text or bytes) read from `where`; for invalid JSON, bytes that are
    no UTF-8, or nesting too deep to be `expected` (Python's parser recurses once per level,
    so a hostile file would end in a traceback) it raises `error` naming `where`, with
    `hint` (what to do) after a semicolon."""
    tail = f"; {hint}" if hint else ""
    try:
        return json.loads(data)
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply to be {expected}{tail}") from None
    except ValueError as err:   # json.JSONDecodeError and UnicodeDecodeError
        raise error(f"{where}: not valid JSON ({err}){tail}") from None


HASH_CHUNK = 1 << 22


def file_hasher(path, on_chunk=None):
    """The sha256 hash object of the file at `path`, read in chunks (shards and tarballs are
    gigabytes); `on_chunk(n)` is told each chunk's length (a progress bar)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
    return digest


def sha256_file(path) -> str:
    """The hex sha256 of the file at `path`."""
    return file_hasher(path).hexdigest()


class OutputError(ValueError):
    """An output folder or file that cannot be used; the message names the option and the path."""


def ensure_dir(path, option: str = "--out") -> Path:
    """Create the folder `path` given by the command-line `option`, and check that files can
    be written in it; raise OutputError naming the option, the path and the reason."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: is a file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        # os.access says yes to root on a read-only file system: writing is the only true test.
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"{option} {path}: cannot write there ({err.strerror or err})") from None
    return path


def ensure_file_target(path, option: str = "--out") -> Path:
    """Check that the file `path` given by `option` can be written (its folder is created)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder, expected a file name")
    ensure_dir(path.parent if str(path.parent) else Path("."), option=f"{option} {path}: its folder")
    return path


class FolderLockedError(ValueError):
    """Another process holds the folder; the message names the holder."""


LOCK_FILE = ".lock"


@contextlib.contextmanager
def folder_lock(folder, what: str = "folder"):
    """Hold an exclusive lock on `folder` while the block runs; a second holder is refused.

    The lock is an advisory `flock` on `folder/.lock`, which holds the holder's pid, host
    and command line so that the refusal can name it. The kernel drops the lock when its
    process ends, however it ends, so a killed run never leaves a stale lock behind. The
    lock file itself stays (removing it would race with the next holder)."""
    folder = ensure_dir(folder)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise FolderLockedError(f"{what} {folder} is in use by {holder}; wait for it to end or stop it") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({' '.join(sys.argv)[:300]})\n").encode())
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
