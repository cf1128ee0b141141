"""The policy trunk shared by the domains of a multi-domain SpotTune, run with each
domain's own BN layers (or its own, shared ones), on one domain's images or on several
domains' images at once.

Why per-domain BN layers. A shared trunk sees images of very different domains
(greyscale pedestrians, digits, flowers); with one set of BN statistics, a batch's
normalisation would depend on which domains happen to share it, and evaluation would use
statistics pooled over all domains. With a copy per domain (8 BN layers, ~1k parameters
at width 1, stored with the domain like every other BN of SpotTune) the convolutions are
shared and each domain normalises with its own statistics, so running the trunk on the
concatenated batches of several domains gives each domain exactly what a separate pass
would: the per-domain parts of a joint step get the gradients of separate passes.
`trunk_bn="shared"` keeps one set (the ablation docs/joint.md reports).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from decathlon.models.resnet import ResNet, pool_features

TRUNK_BN_KINDS = ("per_domain", "shared")


def trunk_norms(trunk: ResNet) -> list:
    """The trunk's BN layers in the order `trunk_features` takes them: stem, each block's
    two, head."""
    norms = [trunk.stem.bn]
    for block in trunk.blocks:
        norms += list(block.norms())
    return norms + [trunk.head_bn]


def copy_trunk_norms(trunk: ResNet) -> nn.ModuleList:
    """A domain's own copy of the trunk's BN layers."""
    return nn.ModuleList(copy.deepcopy(bn) for bn in trunk_norms(trunk))


class SlicedNorm:
    """Each domain's BN layer applied to its own slice of a concatenated batch."""

    def __init__(self, norms: list, sizes: list):
        self.norms, self.sizes = norms, sizes

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.norms) == 1:
            return self.norms[0](x)
        return torch.cat([bn(part) for bn, part in zip(self.norms, torch.split(x, self.sizes))])


def trunk_features(trunk: ResNet, x: torch.Tensor, norms: list | None) -> torch.Tensor:
    """Pooled trunk features of `x`, with `norms` (a flat list in `trunk_norms` order,
    each entry a BN layer or a SlicedNorm) in place of the trunk's own BN layers."""
    if norms is None:
        return trunk.features(x)
    h = trunk.stem(x, norms[0])
    for index, block in enumerate(trunk.blocks):
        h = block(h, norms=norms[1 + 2 * index:3 + 2 * index])
    return pool_features(h, norms[-1])


def group_features(trunk: ResNet, xs: list, domain_norms: list | None) -> list:
    """Trunk features of several domains' batches, the convolutions run once on all the
    batches of one image size (domains differ: 64 crops, 72x72, 144x72); `domain_norms`:
    each batch's domain's BN copies (None: the trunk's shared BNs)."""
    features = [None] * len(xs)
    by_size = {}
    for index, x in enumerate(xs):
        by_size.setdefault(tuple(x.shape[1:]), []).append(index)
    for indices in by_size.values():
        sizes = [xs[i].shape[0] for i in indices]
        x = xs[indices[0]] if len(indices) == 1 else torch.cat([xs[i] for i in indices])
        norms = None
        if domain_norms is not None:
            norms = [SlicedNorm([domain_norms[i][layer] for i in indices], sizes)
                     for layer in range(len(domain_norms[indices[0]]))]
        for i, part in zip(indices, torch.split(trunk_features(trunk, x, norms), sizes)):
            features[i] = part
    return features
