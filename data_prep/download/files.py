"""`python -m data_prep download DEST`: fetch the Decathlon's three files into DEST.

DEST then holds decathlon-1.0-devkit.tar.gz, decathlon-1.0-data.tar.gz and
decathlon-1.0-data-imagenet.tar under their own names, which is what
`python -m data_prep prepare --source DEST` reads.

Neither the benchmark nor ImageNet publishes sizes or checksums, so the first complete
download of a file is the reference: its URL, size, sha256 and completion time go into
DEST/downloads.json (written atomically). Every later run checks each present file against
its record (size first, which is free, then sha256) and skips it if it matches; a file that
does not match is moved aside to `<name>.mismatch`, so nothing that looks complete is wrong,
and the run fails naming file, field, expected and found value. The next run downloads the
file afresh, and that download must match the record too (a changed file on the server is an
error, not a silent new reference).

A file present in DEST but absent from downloads.json is hashed and recorded as it is (with
"url": null), with a message saying so. The ImageNet tar is behind ImageNet's terms, so
putting a file there by hand is a supported route, and there is nothing published to check it
against: recording it is the best available, and from then on it is verified like a download.

The transfer itself (resume with If-Range, retry, progress) lives in data_prep.download.http; the
`<name>.part.json` beside a `.part` (which version of the file it holds) goes with the .part.
"""
from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from decathlon.files import OutputError, ensure_dir, parse_json, write_bytes_atomic
from data_prep.errors import PrepareError
from data_prep.download.http import AccessRefused, DownloadError, fetch, file_sha256, say, validator_path
from data_prep.sources import DATA_TARBALL, DEVKIT_TARBALL, IMAGENET_TARBALL

_VGG_SHARE = "http://www.robots.ox.ac.uk/~vgg/share/"
OFFICIAL_URLS = {
    DEVKIT_TARBALL: _VGG_SHARE + DEVKIT_TARBALL,
    DATA_TARBALL: _VGG_SHARE + DATA_TARBALL,
    IMAGENET_TARBALL: "http://www.image-net.org/image/decathlon/" + IMAGENET_TARBALL,
}
FILES = {"devkit": DEVKIT_TARBALL, "data": DATA_TARBALL, "imagenet": IMAGENET_TARBALL}  # --files keys
RECORDS_NAME = "downloads.json"
BENCHMARK_PAGE = "https://www.robots.ox.ac.uk/~vgg/decathlon/"


def download(dest, files=None, mirror: str | None = None, progress: bool = True, retries: int = 5,
             backoff_seconds: float = 1.0, timeout: float = 60.0) -> dict:
    """Fetch or check the selected files in `dest`; return {file name: its downloads.json record}.

    files: 'devkit,data,imagenet' keys (a string or a list; None for all three). mirror: a base
    address serving the same file names, instead of the official ones. Every selected file is
    attempted even when another fails (so that a refused ImageNet tar does not hold up the other
    two); then a single failure is raised as it is, several as one DownloadError listing them."""
    dest = Path(dest)
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise PrepareError(f"--timeout {timeout}: expected a positive number of seconds")
    if not (isinstance(retries, int) and retries >= 0):
        raise PrepareError(f"--retries {retries}: expected a whole number, 0 or more")
    urls = {name: file_url(name, mirror) for name in parse_files(files)}
    try:
        ensure_dir(dest, option="DEST")
    except OutputError as err:
        raise PrepareError(str(err)) from None
    records = read_records(dest)
    failures = []
    for name, url in urls.items():
        try:
            _obtain(dest, name, url, records,
                    dict(retries=retries, backoff_seconds=backoff_seconds, timeout=timeout, progress=progress))
        except DownloadError as err:
            failures.append(err)
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise DownloadError("\n".join(map(str, failures)))
    return {name: records[name] for name in urls}


def parse_files(files) -> list:
    """File names for 'devkit,data,imagenet' keys, in that order; None selects all three."""
    if files is None:
        return list(FILES.values())
    keys = {key.strip() for key in (files.split(",") if isinstance(files, str) else files)}
    unknown = sorted(keys - set(FILES))
    if unknown or not keys:
        raise PrepareError(f"--files {files!r}: unknown {', '.join(unknown) or 'empty list'}; "
                           f"choose from {','.join(FILES)}")
    return [name for key, name in FILES.items() if key in keys]


def file_url(name: str, mirror: str | None = None) -> str:
    if mirror is None:
        return OFFICIAL_URLS[name]
    if urlsplit(mirror).scheme not in ("http", "https"):
        raise PrepareError(f"--mirror {mirror!r}: expected an http:// or https:// base address")
    return mirror.rstrip("/") + "/" + name


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RECORD_FIELDS = {  # field: (check, what is expected)
    "url": (lambda v: v is None or isinstance(v, str), "an address or null"),
    "size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a byte count"),
    "sha256": (lambda v: isinstance(v, str) and _SHA256.match(v) is not None, "64 lowercase hex digits"),
    "completed": (lambda v: isinstance(v, str), "a date and time"),
}


def read_records(dest: Path) -> dict:
    path = dest / RECORDS_NAME
    if not path.exists():
        return {}
    advice = "fix it, or delete it to have the files present hashed and recorded anew"
    records = parse_json(path.read_bytes(), path, "download records", PrepareError, advice)
    if not isinstance(records, dict):
        raise PrepareError(f"{path}: expected an object {{file name: record}}, found {type(records).__name__}")
    for name, record in records.items():
        if not isinstance(record, dict):
            raise PrepareError(f"{path}: entry {name!r}: expected an object with fields "
                               f"{', '.join(_RECORD_FIELDS)}, found {type(record).__name__}; {advice}")
        for field, (valid, expected) in _RECORD_FIELDS.items():
            if not valid(record.get(field)):
                found = repr(record[field])[:80] if field in record else "missing"
                raise PrepareError(f"{path}: entry {name!r}: field {field!r} is {found}, expected {expected}; "
                                   f"{advice}")
    return records


def _obtain(dest: Path, name: str, url: str, records: dict, fetch_options: dict) -> None:
    """Check, record or fetch one file; its record is written before the .part is renamed, so a
    stop in between leaves a complete .part that the next run finds complete (HTTP 416)."""
    path, record, progress = dest / name, records.get(name), fetch_options["progress"]
    if path.exists() and record is None:
        say(f"{name}: present in {dest} but not in {RECORDS_NAME} (put there by hand?): hashing it and "
            "recording it as it is")
        _record(dest, records, name, None, path.stat().st_size, file_sha256(path, progress))
    elif path.exists():
        _check(path, url, record, path.stat().st_size, lambda: file_sha256(path, progress),
               "run again to download it afresh")
        say(f"{name}: present and matches {RECORDS_NAME} (size {record['size']}, sha256), skipped")
    else:
        part = dest / f"{name}.part"
        try:
            fetched = fetch(url, part, **fetch_options)
        except AccessRefused as err:
            raise AccessRefused(f"{err}; {_access_advice(name, dest)}") from None
        if record is not None:
            _check(part, url, record, fetched.size, lambda: fetched.sha256,
                   f"the file at this address differs from the one recorded; if the new one is right, "
                   f"delete its entry from {dest / RECORDS_NAME} and run again")
        _record(dest, records, name, url, fetched.size, fetched.sha256)
        os.replace(part, path)
        validator_path(part).unlink(missing_ok=True)
        say(f"{name}: downloaded, {fetched.size} bytes, sha256 {fetched.sha256}")


def _check(path: Path, url: str, record: dict, size: int, sha256: Callable[[], str], advice: str) -> None:
    """Raise DownloadError, after moving `path` aside to <name>.mismatch, unless it matches `record`."""
    name = path.name.removesuffix(".part")
    found = {"size": size}
    if size == record["size"]:
        found["sha256"] = sha256()
    field = next((field for field, value in found.items() if value != record[field]), None)
    if field is None:
        return
    aside = path.with_name(f"{name}.mismatch")
    os.replace(path, aside)
    if path.name.endswith(".part"):
        validator_path(path).unlink(missing_ok=True)
    raise DownloadError(f"{name} ({url}): {field} mismatch: expected {record[field]} (recorded in "
                        f"{RECORDS_NAME} at {record['completed']}), found {found[field]}; moved to {aside}; "
                        f"{advice}")


def _record(dest: Path, records: dict, name: str, url: str | None, size: int, sha256: str) -> None:
    records[name] = {"url": url, "size": size, "sha256": sha256,
                     "completed": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_bytes_atomic(dest / RECORDS_NAME, json.dumps(records, indent=2, sort_keys=True) + "\n")


def _access_advice(name: str, dest: Path) -> str:
    if name == IMAGENET_TARBALL:
        terms = ("ImageNet's terms of access apply to this file: register at https://image-net.org/, "
                 "accept the terms and download it there")
    else:
        terms = f"the server asks for a login or accepted terms; see the benchmark page {BENCHMARK_PAGE}"
    return (f"{terms}. Then put {name} into {dest} by hand (the next run hashes it and records it in "
            f"{RECORDS_NAME}), or fetch it from another address with --mirror URL")
