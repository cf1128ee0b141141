"""Atomic writes, output-folder checks and the folder lock."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from decathlon.files import (FolderLockedError, OutputError, ensure_dir, ensure_file_target, folder_lock,
                             write_bytes_atomic)


def test_atomic_write_leaves_no_temporary(tmp_path):
    write_bytes_atomic(tmp_path / "a.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_ensure_dir_refuses_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("mine")
    with pytest.raises(OutputError, match=r"--out .*file: is a file, expected a folder"):
        ensure_dir(target)
    with pytest.raises(OutputError, match=r"--out .*file.sub: cannot write there"):
        ensure_dir(target / "sub")
    assert target.read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_ensure_dir_refuses_an_unwritable_folder(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="cannot write there"):
        ensure_dir(locked / "x", option="--results")


def test_ensure_file_target_refuses_a_folder(tmp_path):
    with pytest.raises(OutputError, match="is a folder, expected a file name"):
        ensure_file_target(tmp_path)
    assert ensure_file_target(tmp_path / "new" / "m.pt") == tmp_path / "new" / "m.pt"
    assert (tmp_path / "new").is_dir()


def test_folder_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    with folder_lock(tmp_path, what="job folder"):
        with pytest.raises(FolderLockedError, match=rf"job folder .* is in use by pid {os.getpid()} "):
            with folder_lock(tmp_path, what="job folder"):
                pass
    with folder_lock(tmp_path):  # released
        pass


def test_folder_lock_is_released_when_its_holder_dies(tmp_path):
    holder = textwrap.dedent(f"""
        import os, sys
        from decathlon.files import folder_lock
        with folder_lock({str(tmp_path)!r}):
            print("held", flush=True)
            sys.stdin.readline()
            os._exit(9)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(FolderLockedError, match=f"pid {proc.pid} "):
        with folder_lock(tmp_path):
            pass
    proc.communicate("\n")
    with folder_lock(tmp_path):
        pass


def test_parse_json_names_the_file_for_invalid_and_absurdly_nested_content():
    from decathlon.files import parse_json

    class Refused(ValueError):
        pass

    assert parse_json(b'{"a": 1}', "x.json", "an object") == {"a": 1}
    with pytest.raises(Refused, match=r"^x.json: not valid JSON \(.*\); delete it$"):
        parse_json(b"{", "x.json", "an object", Refused, hint="delete it")
    with pytest.raises(Refused, match=r"^x.json: not valid JSON"):
        parse_json(b"\xff\xfe{", "x.json", "an object", Refused)
    with pytest.raises(Refused, match=r"^x.json: JSON nested too deeply to be an object$"):
        parse_json("[" * 100000 + "]" * 100000, "x.json", "an object", Refused)
