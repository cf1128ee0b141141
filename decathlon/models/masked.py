"""Piggyback's masked convolution (Mallya et al. 2018; docs/reference.md, section 5.1).

Each frozen pretrained weight gets a real-valued score; the forward pass uses the weight
times the binary mask `score > threshold`, and the backward pass hands the mask's gradient
to the score unchanged (straight-through), as the public code's `Binarizer` does. Scores
start at `scale` (1e-2) above the threshold (5e-3): a new mask keeps every weight, and the
network then computes exactly the pretrained network's outputs (weight * 1.0 == weight).

Everything is elementwise on the device: no host synchronisation and no data-dependent
shape, so a training step with masks can be captured in a CUDA graph.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

MASK_BITS_PER_FLOAT = 32   # a mask stores 1 bit per weight: 1/32 of a float32 parameter


class _Binarize(torch.autograd.Function):
    """{0, 1} = scores > threshold forward; identity gradient backward (straight-through).

    A custom Function rather than `s + (hard - s).detach()`: the latter's forward is only
    equal to the hard mask up to float rounding, and an all-ones mask must be exactly 1."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, threshold: float) -> torch.Tensor:
        return (scores > threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def binary_mask(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    return _Binarize.apply(scores, threshold)


class MaskedConv2d(nn.Conv2d):
    """A convolution whose frozen weight is gated by a learned binary mask.

    Made from an existing convolution (`MaskedConv2d.from_conv`): it holds the same weight
    tensor, frozen, and a new `mask_scores` parameter of the weight's shape."""

    def __init__(self, *args, scale: float = 1e-2, threshold: float = 5e-3, **kwargs):
        super().__init__(*args, **kwargs)
        self.threshold = float(threshold)
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.mask_scores = nn.Parameter(torch.full_like(self.weight, float(scale)))

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, scale: float, threshold: float) -> "MaskedConv2d":
        masked = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                     scale=scale, threshold=threshold, device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            masked.weight.copy_(conv.weight)
            if conv.bias is not None:
                masked.bias.copy_(conv.bias)
        return masked

    def mask(self) -> torch.Tensor:
        """The current binary mask (no gradient)."""
        with torch.no_grad():
            return binary_mask(self.mask_scores, self.threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * binary_mask(self.mask_scores, self.threshold), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, threshold={self.threshold}"


def mask_convolutions(net: nn.Module, scale: float, threshold: float) -> list:
    """Replace every nn.Conv2d of `net` by a MaskedConv2d over the same weights, in place;
    returns the masked convolutions' names (the public code masks every convolution)."""
    names = [name for name, module in net.named_modules()
             if isinstance(module, nn.Conv2d) and not isinstance(module, MaskedConv2d)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name)
        setattr(parent, child, MaskedConv2d.from_conv(getattr(parent, child), scale, threshold))
    return names


def masked_convolutions(net: nn.Module) -> dict:
    """{name: MaskedConv2d} of `net`, in module order."""
    return {name: module for name, module in net.named_modules() if isinstance(module, MaskedConv2d)}


def packed_masks(net: nn.Module) -> dict:
    """{name: {'bits': uint8 tensor, 8 mask entries per byte, 'shape': [...]}} of every
    masked convolution: what a domain stores, 1 bit per weight (numpy's packbits)."""
    packed = {}
    for name, conv in masked_convolutions(net).items():
        mask = conv.mask().to("cpu", torch.bool).contiguous().numpy()
        packed[name] = {"bits": torch.from_numpy(np.packbits(mask.reshape(-1))), "shape": list(mask.shape)}
    return packed


def unpack_mask(entry: dict) -> torch.Tensor:
    """A bool mask from one `packed_masks` entry."""
    shape = entry["shape"]
    count = int(np.prod(shape))
    return torch.from_numpy(np.unpackbits(entry["bits"].numpy(), count=count).astype(bool).reshape(shape))
