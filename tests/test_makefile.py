"""The Makefile passes paths with spaces (and a leading ~/) on as one argument each.

`make -n` prints the commands without running them (nothing is installed or prepared);
the printed command is parsed as the shell would split it."""
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _command(target: str, *variables: str, program: str = "data_prep") -> list:
    """The arguments of the `python -m data_prep ...` line that `make -n target` prints."""
    done = subprocess.run(["make", "-n", "-C", str(CHECKOUT), target, *variables], capture_output=True,
                          text=True, env={**os.environ, "HOME": "/home/some one"})
    assert done.returncode == 0, done.stderr
    printed = done.stdout.replace("\\\n", " ")   # a recipe's continued lines are one command
    line = next(line for line in printed.splitlines() if f"-m {program}" in line)
    return shlex.split(line)


def _value(arguments: list, option: str) -> str:
    return arguments[arguments.index(option) + 1]


def test_prepare_data_passes_each_path_as_one_argument():
    arguments = _command("prepare-data", "OUT=my  data/shards", "SOURCE=~/source dir", "TEST_LABELS=a b.zip",
                         "DOMAINS=dtd,svhn")
    assert _value(arguments, "--out") == "my  data/shards"
    assert _value(arguments, "--source") == "/home/some one/source dir"
    assert _value(arguments, "--test-labels") == "a b.zip"
    assert _value(arguments, "--domains") == "dtd,svhn"


def test_verify_and_download_pass_their_folder_as_one_argument():
    assert _command("verify-data", "OUT=a b")[-1] == "a b"
    assert _command("verify-data")[-1] == "data/synthetic"
    arguments = _command("download", "DEST=~/deca thlon", "FILES=devkit")
    assert arguments[arguments.index("download") + 1] == "/home/some one/deca thlon"
    assert _value(arguments, "--files") == "devkit"
