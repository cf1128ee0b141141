"""Data preparation: the Decathlon as distributed -> checksummed HDF5 shards + manifest.

    decathlon download DEST             (data_prep.download: the three files, resumable)
    decathlon prepare --source SRC --out OUT   (data_prep.preparation; decode, shards, split_writer)
    decathlon verify OUT                (data_prep.verification)

(`python -m data_prep ...` is the same.) `data_prep.synthetic` is the embedded default, a
synthetic mini-decathlon in the official on-disk format. Stored geometry and shard layout:
data_prep.decode and data_prep.shards.
"""
from data_prep.errors import PrepareError
from data_prep.preparation import prepare
from data_prep.verification import verify

__all__ = ["PrepareError", "prepare", "verify"]
