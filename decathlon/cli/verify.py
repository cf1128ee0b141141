"""Re-check every shard of a prepared folder against its manifest, and that the preparation finished.

Exit 0 when everything matches, 1 listing every problem, 2 when the manifest is unusable.
The same as `python -m data_prep verify` and `make verify-data`.
"""
from data_prep.commands import add_verify_arguments as add_arguments, run_verify as run

__all__ = ["add_arguments", "run"]
