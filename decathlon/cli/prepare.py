"""Turn the Decathlon as distributed (or, without --source, the synthetic mini-decathlon) into HDF5 shards.

Reads an extracted decathlon-1.0/ or the downloaded tarballs, checks every annotation against
the benchmark's id scheme, and writes checksummed shards and OUT/manifest.json. A rerun skips
what is already verified. The same as `python -m data_prep prepare` and `make prepare-data`.
"""
from data_prep.commands import add_prepare_arguments as add_arguments, run_prepare as run

__all__ = ["add_arguments", "run"]
