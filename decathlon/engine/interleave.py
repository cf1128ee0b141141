"""Several domains' training batches interleaved into one epoch (joint multi-domain training).

An epoch is one pass over every domain's training split: each domain's ShardLoader gives
its batches in its own order (a function of seed and epoch, as for a per-domain job), and
the domains take turns in an order that is a function of (seed, epoch) alone: a random
permutation of one token per batch, so that a domain with 16 batches is spread over the
epoch as evenly, in expectation, as one with 500. Every domain therefore sees exactly as
many epochs as in the per-domain protocol, and its learning-rate schedule, stepped per
epoch, means what it means there.

A step takes the next batch of up to `domains_per_step` different domains (consecutive
tokens, a new step starting at a domain already in the current one), so that what is
shared (the policy trunk) can run once on several domains' images together; with 1,
every step is one domain's batch.
"""
from __future__ import annotations

import numpy as np


def epoch_schedule(batches_per_domain: dict, seed: int, epoch: int, domains_per_step: int) -> list:
    """[(domain, ...) per step] of one epoch: a function of the batch counts, seed and epoch."""
    if domains_per_step < 1:
        raise ValueError(f"domains_per_step must be at least 1, got {domains_per_step}")
    names = sorted(batches_per_domain)
    tokens = np.repeat(np.arange(len(names)), [batches_per_domain[name] for name in names])
    order = np.random.default_rng([seed, epoch, len(names)]).permutation(tokens)
    steps, current = [], []
    for token in order:
        name = names[token]
        if name in current or len(current) == domains_per_step:
            steps.append(tuple(current))
            current = []
        current.append(name)
    if current:
        steps.append(tuple(current))
    return steps


class InterleavedLoader:
    """Iterate steps: flat tuples (domain, images, labels, domain, images, labels, ...), a
    triple per domain in the step.

    `loaders`: {domain: ShardLoader} (training loaders, same seed and ranks)."""

    def __init__(self, loaders: dict, seed: int, domains_per_step: int = 1):
        self.loaders, self.seed, self.domains_per_step = dict(loaders), seed, domains_per_step
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for loader in self.loaders.values():
            loader.set_epoch(epoch)

    def schedule(self, epoch: int | None = None) -> list:
        counts = {name: len(loader) for name, loader in self.loaders.items()}
        return epoch_schedule(counts, self.seed, self.epoch if epoch is None else epoch, self.domains_per_step)

    def __len__(self) -> int:
        return len(self.schedule())

    def __iter__(self):
        iterators = {name: iter(loader) for name, loader in self.loaders.items()}
        try:
            for step in self.schedule():
                group = []
                for name in step:
                    images, labels, _ = next(iterators[name])
                    group += [name, images, labels]
                yield tuple(group)
        finally:
            for iterator in iterators.values():
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
