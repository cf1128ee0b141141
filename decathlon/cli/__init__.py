"""Command line of the suite: `decathlon <command> ...` (= `python -m decathlon <command> ...`).

Each command lives in `decathlon/cli/<name>.py` (a `-` in its name is `_` in the file's),
whose docstring's first line is its help and which exposes `add_arguments(parser)` and
`run(args) -> exit code`, and optionally `check_arguments(args, parser)` for what argparse
cannot check itself. Adding a command is one name in COMMANDS; its module is imported when
the parser is built.
"""
from __future__ import annotations

import argparse
import importlib

COMMANDS = ("download", "prepare", "verify", "run", "sweep", "select", "pretrain", "train", "collect", "score",
            "assemble", "predict", "import-backbone", "import-spottune")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="decathlon", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"decathlon.cli.{name.replace('-', '_')}")
        summary = module.__doc__.strip().splitlines()[0]
        command = commands.add_parser(name, help=summary, description=module.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(run=module.run, check=getattr(module, "check_arguments", None), command_parser=command)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.check is not None:   # what argparse cannot check itself, reported as a usage error
        args.check(args, args.command_parser)
    return args.run(args)
