"""`decathlon download|prepare|verify` are data_prep's commands: one front door."""
from __future__ import annotations

import pytest

from data_prep.__main__ import COMMANDS as DATA_COMMANDS
from decathlon.cli import build_parser, main


def _options(parser) -> list:
    return sorted(tuple(action.option_strings) or (action.dest,) for action in parser._actions)


@pytest.mark.parametrize("name", ["download", "prepare", "verify"])
def test_the_data_commands_take_data_preps_arguments(name):
    ours = build_parser()._subparsers._group_actions[0].choices[name]
    import argparse
    theirs = argparse.ArgumentParser()
    DATA_COMMANDS[name][1](theirs)
    assert _options(ours) == _options(theirs)


def test_verify_through_the_decathlon_command(tiny_decathlon, capsys):
    assert main(["verify", str(tiny_decathlon)]) == 0
    assert "every shard matches the manifest" in capsys.readouterr().out


def test_prepare_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert main(["prepare", "--scale", "0", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --scale 0.0: expected a positive size multiplier (1.0: the default size)"]
