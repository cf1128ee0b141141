"""Fetch the benchmark's three tarballs into DEST (resumable; sizes and sha256 recorded in DEST/downloads.json).

The same as `python -m data_prep download` and `make download`. ImageNet's terms apply to its tar.
"""
from data_prep.commands import add_download_arguments as add_arguments, run_download as run

__all__ = ["add_arguments", "run"]
