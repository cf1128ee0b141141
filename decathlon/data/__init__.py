"""Prepared data and its facts: the domain registry, annotations, the shard manifest,
the shard loader and the batched augmentation."""
