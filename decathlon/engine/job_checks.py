"""What a training job refuses, before it trains or writes anything, and while it trains.

Before: a negative seed; fewer than one epoch or a non-integer number of them; a training
split that gives no optimizer step per epoch (fewer images per rank than one batch when
the partial batch is dropped); and shards that are not what the manifest says
(decathlon.data.shard_checks). While training: an epoch whose mean loss is NaN or
infinite stops the job (`DivergedError`) before its record line or checkpoint is written.

A job's identity (what a checkpoint may only be resumed with) includes the backbone's
sha256 and the data it reads: the data folder and a digest of the sha256s of the job's
shards (`data_identity`).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

from decathlon.data import split_entry


class JobError(ValueError):
    """A job that must not run (or go on) as specified; the message says why."""


class DivergedError(JobError):
    """The training loss became NaN or infinite."""


def check_seed(seed) -> None:
    if type(seed) is not int or seed < 0:
        raise JobError(f"seed {seed!r}: expected an integer >= 0 (--seed)")


def steps_per_epoch(num_images: int, batch_size: int, world_size: int, drop_last: bool) -> int:
    """Optimizer steps of one rank in one epoch over `num_images` images, as ShardLoader
    batches them: each rank takes an equal share (rounded down with drop_last, else up),
    cut into batches (the partial one dropped with drop_last)."""
    per_rank = num_images // world_size if drop_last else -(-num_images // world_size)
    return per_rank // batch_size if drop_last else -(-per_rank // batch_size)


def check_training_length(hp: dict, manifest: dict, data, domains, splits, world_size: int,
                          drop_last: bool) -> None:
    """Refuse a job that would take no optimizer step: epochs < 1 or not an integer, or a
    domain's training split(s) smaller than one batch per rank."""
    epochs, batch_size = hp["epochs"], hp["batch_size"]
    if type(epochs) is not int or epochs < 1:
        raise JobError(f"hyperparameter 'epochs' is {epochs!r}: a training job needs a whole number of epochs, "
                       "at least 1")
    if type(batch_size) is not int or batch_size < 1:
        raise JobError(f"hyperparameter 'batch_size' is {batch_size!r}: expected an integer >= 1")
    for domain in domains:
        images = sum(split_entry(manifest, data, domain, split)["num_images"] for split in splits)
        if steps_per_epoch(images, batch_size, world_size, drop_last) < 1:
            ranks = f" over {world_size} processes" if world_size > 1 else ""
            raise JobError(f"{domain}/{'+'.join(splits)} has {images} training images{ranks}, fewer than one "
                           f"batch (batch_size {batch_size}, the partial batch dropped): the job would train "
                           f"nothing; lower batch_size (--hparam batch_size=N)")


def data_identity(data, manifest: dict, domains, splits_of) -> str:
    """The data a job reads: the folder, and a digest of the manifest's sha256 of every shard
    of its domains' splits (`splits_of(domain)`)."""
    digest = hashlib.sha256()
    for domain in domains:
        for split in splits_of(domain):
            for record in split_entry(manifest, data, domain, split)["shards"]:
                digest.update(f"{record['file']} {record.get('sha256')}\n".encode())
    return f"{Path(data).resolve()} (shards {digest.hexdigest()[:16]})"


def check_finite(losses: dict, epoch: int, out) -> None:
    """Stop the job when an epoch's mean loss is NaN or infinite (epoch counted from 1)."""
    bad = {key: value for key, value in losses.items() if not math.isfinite(value)}
    if bad:
        values = ", ".join(f"{key} {value}" for key, value in bad.items())
        raise DivergedError(f"job {out}: training diverged at epoch {epoch} (mean {values}); the job is stopped "
                            "unfinished, nothing of that epoch kept: lower the learning rate (--hparam lr=...) "
                            "or check the data")


def finite_or_null(value):
    """`value` with every NaN or infinite float (in dicts, lists, tuples) replaced by None:
    what a record or final.json stores, JSON having no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value
