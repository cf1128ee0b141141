"""Fixtures for the fused and routed SpotTune tests.

(pytest runs with --import-mode=importlib, so test modules cannot import this file:
helpers are handed out as fixtures.)
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from decathlon.models import SpotTuneNet, resnet26

DOMAIN = "aircraft"
WIDTH = 0.25


class FixedDecisions:
    """Stands in for ``SpotTuneNet.decisions``: the same (N, blocks) matrix every call."""

    def __init__(self, matrix: torch.Tensor):
        self.matrix = matrix

    def __call__(self, x, domain, mode, policy_logits=None):
        return self.matrix


@pytest.fixture
def spottune_net():
    """``build(policy, dtype, memory_format)``: a one-domain SpotTuneNet whose BN layers
    (backbone and domain) and fine-tuned blocks all differ from their initial values."""

    def build(policy="per_domain", dtype=torch.float32, memory_format=torch.contiguous_format):
        torch.manual_seed(0)
        net = SpotTuneNet(resnet26(5, WIDTH), policy=policy)
        net.add_domain(DOMAIN, 5, copy_classifier=True)
        with torch.no_grad():
            for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.2, 0.2)
                bn.running_mean.uniform_(-0.2, 0.2)
                bn.running_var.uniform_(0.5, 1.5)
            for parameter in net.domains[DOMAIN].tuned_blocks.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        return net.to(dtype).to(memory_format=memory_format)

    return build


@pytest.fixture
def decision_matrix():
    """``matrix(n)``: (n, 12) decisions with all-frozen, all-tuned, split and repeated
    columns (the repeat needs no reordering when routed)."""

    def matrix(n=8, seed=5):
        generator = torch.Generator().manual_seed(seed)
        m = torch.bernoulli(torch.full((n, 12), 0.5), generator=generator)
        m[:, 0], m[:, 1] = 0, 1
        m[:, 2] = torch.arange(n) % 2
        m[:, 3] = m[:, 2]
        return m

    return matrix


@pytest.fixture
def fix_decisions():
    """``fix(net, matrix)``: every forward of ``net`` uses the decision ``matrix``."""

    def fix(net, matrix):
        net.decisions = FixedDecisions(matrix)
    return fix
