"""`python -m data_prep download` refuses bad options, a bad DEST and a damaged downloads.json
with one line (exit 2) naming the option, the file or the entry and field, before any request."""
from __future__ import annotations

import json

import pytest

from data_prep.__main__ import main
from data_prep.download import RECORDS_NAME
from data_prep.sources import DEVKIT_TARBALL


def _download(dest, mirror, *options) -> int:
    return main(["download", str(dest), "--mirror", mirror.url, "--quiet", *options])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf"])
def test_timeout_must_be_a_positive_number(mirror, tmp_path, capsys, value):
    assert _download(tmp_path / "dest", mirror, f"--timeout={value}") == 2
    assert _one_line(capsys).startswith(f"error: --timeout {float(value)}: expected a positive number of seconds")
    assert mirror.requests == []


def test_retries_must_not_be_negative(mirror, tmp_path, capsys):
    assert _download(tmp_path / "dest", mirror, "--retries", "-1") == 2
    assert _one_line(capsys).startswith("error: --retries -1: expected a whole number, 0 or more")


@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_dest_that_cannot_be_a_folder(mirror, tmp_path, capsys, where):
    (tmp_path / "file").write_text("mine")
    dest = tmp_path / "file" if where == "a file" else tmp_path / "file" / "dest"
    assert _download(dest, mirror) == 2
    err = _one_line(capsys)
    assert err.startswith(f"error: DEST {dest}: ")
    assert ("is a file, expected a folder" if where == "a file" else "cannot write there") in err
    assert (tmp_path / "file").read_text() == "mine" and mirror.requests == []


GOOD = {"url": None, "size": 3, "sha256": "0" * 64, "completed": "2024-01-01T00:00:00+00:00"}


@pytest.mark.parametrize("record, problem", [
    ("text", "entry 'decathlon-1.0-devkit.tar.gz': expected an object with fields url, size, sha256, completed, "
             "found str"),
    ({**GOOD, "size": "3"}, "entry 'decathlon-1.0-devkit.tar.gz': field 'size' is '3', expected a byte count"),
    ({key: value for key, value in GOOD.items() if key != "sha256"},
     "entry 'decathlon-1.0-devkit.tar.gz': field 'sha256' is missing, expected 64 lowercase hex digits"),
    ({**GOOD, "completed": None},
     "entry 'decathlon-1.0-devkit.tar.gz': field 'completed' is None, expected a date and time"),
])
def test_damaged_record_is_named(mirror, tmp_path, capsys, record, problem):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / DEVKIT_TARBALL).write_bytes(b"abc")
    (dest / RECORDS_NAME).write_text(json.dumps({DEVKIT_TARBALL: record}))
    assert _download(dest, mirror, "--files", "devkit") == 2
    assert _one_line(capsys).startswith(f"error: {dest / RECORDS_NAME}: {problem}")


def test_deeply_nested_records_file_is_named(mirror, tmp_path, capsys):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / RECORDS_NAME).write_text("[" * 100000 + "]" * 100000)
    assert _download(dest, mirror) == 2
    assert _one_line(capsys).startswith(f"error: {dest / RECORDS_NAME}: JSON nested too deeply to be download records")
