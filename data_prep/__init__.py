"""Data preparation: the Decathlon as distributed -> checksummed HDF5 shards + manifest.

    python -m data_prep prepare --source SRC --out OUT   (see data_prep.prepare)
    python -m data_prep verify OUT                       (see data_prep.verify)

Stored geometry and shard layout: data_prep.decode and data_prep.shards.
"""
