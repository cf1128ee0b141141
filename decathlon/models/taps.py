"""TAPS layers (Wallingford et al. 2022): a frozen weight, a task delta and a gate score.

A gated convolution computes with ``weight + I(score >= threshold) * delta``: the frozen
pretrained weight, plus the task's delta where the layer's scalar score passes the
threshold. The indicator is straight-through: its forward value is the hard 0/1, its
backward the identity, so the score learns from ``sum(grad_W * delta)`` whether its gate
is on or off (docs/reference.md, section 5.2). The delta starts at zero, so a fresh network
computes the backbone's features whatever its gates say.

The straight-through form is written as ``hard + (score - score.detach())`` rather than
as a custom autograd Function: the same values and gradients, and nothing that a CUDA
graph could not capture (no host read of the score, no data-dependent shape).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from decathlon.models.resnet import ConvBN


def straight_through_gate(score: torch.Tensor, threshold: float) -> torch.Tensor:
    """1.0 where score >= threshold, else 0.0; its gradient reaches `score` unchanged."""
    hard = (score >= threshold).to(score.dtype)
    return hard + (score - score.detach())   # grouped: exactly hard (hard + score - score rounds)


class GatedConv(nn.Module):
    """A convolution whose weight is frozen; ``delta`` and ``score`` are the task's."""

    def __init__(self, conv: nn.Conv2d, threshold: float, score_init: float):
        super().__init__()
        if conv.bias is not None:
            raise ValueError("GatedConv wraps bias-free convolutions (every ResNet-26 convolution is)")
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        self.kernel_size = conv.kernel_size
        self.threshold = threshold
        self.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=False)
        self.delta = nn.Parameter(torch.zeros_like(self.weight))
        self.score = nn.Parameter(torch.full((1,), float(score_init)))

    def gate(self) -> torch.Tensor:
        return straight_through_gate(self.score, self.threshold)

    def effective_weight(self) -> torch.Tensor:
        return self.weight + self.gate() * self.delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), None, self.stride, self.padding, self.dilation, self.groups)


def add_gates(net: nn.Module, threshold: float, score_init: float) -> list:
    """Replace the convolution of every ConvBN of `net` (the ResNet-26's 25: stem and
    blocks) by a GatedConv with the same frozen weight; returns (name, GatedConv) pairs in
    network order (input first)."""
    gated = []
    for name, module in net.named_modules():
        if isinstance(module, ConvBN):
            module.conv = GatedConv(module.conv, threshold, score_init)
            gated.append((f"{name}.conv", module.conv))
    return gated


def gated_layers(net: nn.Module) -> list:
    """(name, GatedConv) pairs of `net` in network order."""
    return [(name, module) for name, module in net.named_modules() if isinstance(module, GatedConv)]


def sparsity_penalty(scores: torch.Tensor, weight: float, divisor: float) -> torch.Tensor:
    """The public TAPS code's penalty: weight * sum_i |s_i| / divisor (the code divides by a
    fixed 52, whatever the network); `scores` holds every gated layer's score."""
    return weight * scores.abs().sum() / divisor
