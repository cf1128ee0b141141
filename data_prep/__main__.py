"""`python -m data_prep download DEST`, `python -m data_prep prepare ...` and
`python -m data_prep verify OUT` (the same as `decathlon download|prepare|verify`)."""
from __future__ import annotations

import argparse
import sys

from data_prep.commands import (add_download_arguments, add_prepare_arguments, add_verify_arguments, run_download,
                                run_prepare, run_verify)
from data_prep.download import RECORDS_NAME

COMMANDS = {  # name: (help, add its arguments, run it)
    "prepare": ("turn the Decathlon (or a synthetic mini-decathlon) into HDF5 shards", add_prepare_arguments,
                run_prepare),
    "verify": ("re-check every shard of a prepared folder against its manifest", add_verify_arguments, run_verify),
    "download": ("fetch the benchmark's three tarballs into DEST (resumable; sizes and sha256 recorded in "
                 f"DEST/{RECORDS_NAME})", add_download_arguments, run_download),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (summary, add_arguments, run) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=summary))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
