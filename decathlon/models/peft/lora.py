"""LoRA (Hu et al., ICLR 2022): a frozen weight W plus a trained low-rank update (alpha/r) B A.

    h = W x + (alpha / r) B A x        A: r x in, kaiming-uniform (a=sqrt(5)); B: out x r, zeros

as microsoft/LoRA's loralib/layers.py (`Linear`, `MergedLinear`) initialises and scales it, so
the untrained layer equals W and `merged()` folds the update into one plain layer. Written here
rather than taken from a library (docs/reference_peft.md, section 2): loralib (last release
2023) builds new layers instead of wrapping loaded ones and, by default, adds B A into W in
place at every switch to eval mode and subtracts it back, so the frozen W drifts by rounding;
Hugging Face's peft pulls in transformers and accelerate.

A convolution gets the same update on its unfolded kernel (out x in*k*k): A is a k x k
convolution to r channels (stride, padding and dilation of the frozen one), B a 1x1
convolution back to `out`, so the merged kernel is W + (alpha/r) (B A).view(W.shape) and
its rank is at most r. (loralib's ConvLoRA factorises the kernel as (r*k x in*k) and
(out*k x r*k) matrices instead; section 2 says why this one.)

Targets (`add_lora`): on a timm ViT the attention's fused qkv projection per slice ('q', 'k',
'v': each its own A and B, as loralib's MergedLinear with enable_lora), the attention output
'proj' and the MLP's 'fc1' / 'fc2' of every block; on a CNN 'conv1x1' and 'conv3x3' (groups 1).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

QKV = ("q", "k", "v")
VIT_TARGETS = QKV + ("proj", "fc1", "fc2")
CONV_TARGETS = ("conv1x1", "conv3x3")
LORA_TARGETS = VIT_TARGETS + CONV_TARGETS


def _init_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    """loralib's `reset_parameters`: A as nn.Linear's default weight init, B zeros."""
    nn.init.kaiming_uniform_(a, a=math.sqrt(5))
    nn.init.zeros_(b)


class _LoRALayer(nn.Module):
    """A frozen layer (`base`) with a low-rank update whose weight is `delta_weight()`."""

    def merged(self) -> nn.Module:
        """A plain copy of `base` with the update folded into its weight."""
        layer = copy.deepcopy(self.base)
        with torch.no_grad():
            layer.weight.add_(self.delta_weight())
        return layer


class LoRALinear(_LoRALayer):
    """A frozen nn.Linear (`base`) plus (alpha/r) B_i A_i on each enabled slice of its output
    (`slices`: one flag per equal chunk of the output, e.g. (True, False, True) for q and v of a
    fused qkv; None: the whole output, one pair)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float, slices: tuple | None = None):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.base = base.requires_grad_(False)
        self.slices = tuple(slices) if slices else (True,)
        self.chunk = base.out_features // len(self.slices)
        enabled = sum(self.slices)
        self.lora_A = nn.Parameter(base.weight.new_zeros(enabled, rank, base.in_features))
        self.lora_B = nn.Parameter(base.weight.new_zeros(enabled, self.chunk, rank))
        for a, b in zip(self.lora_A, self.lora_B):
            _init_pair(a, b)
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dropped, pairs, parts = self.dropout(x), iter(zip(self.lora_A, self.lora_B)), []
        for enabled in self.slices:
            if enabled:
                a, b = next(pairs)
                parts.append(dropped @ a.T @ b.T)
            else:
                parts.append(x.new_zeros(*x.shape[:-1], self.chunk))
        return self.base(x) + torch.cat(parts, dim=-1) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """(alpha/r) B A in W's shape (zero rows on slices without a pair)."""
        rows, pairs = [], iter(zip(self.lora_A, self.lora_B))
        for enabled in self.slices:
            if enabled:
                a, b = next(pairs)
                rows.append(b @ a)
            else:
                rows.append(self.lora_A.new_zeros(self.chunk, self.base.in_features))
        return torch.cat(rows) * self.scaling



class LoRAConv2d(_LoRALayer):
    """A frozen nn.Conv2d (`base`, groups 1) plus (alpha/r) B(A(x)): A a k x k convolution to
    r channels with the base's stride, padding and dilation, B a 1x1 convolution."""

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float, dropout: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.base = base.requires_grad_(False)
        self.lora_A = nn.Parameter(base.weight.new_zeros(rank, base.in_channels, *base.kernel_size))
        self.lora_B = nn.Parameter(base.weight.new_zeros(base.out_channels, rank, 1, 1))
        _init_pair(self.lora_A, self.lora_B)
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base
        down = F.conv2d(self.dropout(x), self.lora_A, None, base.stride, base.padding, base.dilation)
        return base(x) + F.conv2d(down, self.lora_B) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        rank = self.lora_A.shape[0]
        return (self.lora_B.view(-1, rank) @ self.lora_A.view(rank, -1)).view(self.base.weight.shape) * self.scaling



LORA_LAYERS = (LoRALinear, LoRAConv2d)


def _vit_targets(net: nn.Module, targets: set):
    """(parent, attribute, layer, qkv slices or None) of each targeted linear of every ViT block."""
    for name, module in net.named_modules():
        attn, mlp = getattr(module, "attn", None), getattr(module, "mlp", None)
        if not (name.split(".")[-2:-1] == ["blocks"] and attn is not None and mlp is not None):
            continue
        slices = tuple(part in targets for part in QKV)
        if any(slices) and isinstance(getattr(attn, "qkv", None), nn.Linear):
            yield attn, "qkv", attn.qkv, slices
        if "proj" in targets and isinstance(getattr(attn, "proj", None), nn.Linear):
            yield attn, "proj", attn.proj, None
        for fc in ("fc1", "fc2"):
            if fc in targets and isinstance(getattr(mlp, fc, None), nn.Linear):
                yield mlp, fc, getattr(mlp, fc), None


def _conv_targets(net: nn.Module, targets: set):
    for module in list(net.modules()):
        for attribute, child in module.named_children():
            if isinstance(child, nn.Conv2d) and child.groups == 1 and child.kernel_size[0] == child.kernel_size[1]:
                if f"conv{child.kernel_size[0]}x{child.kernel_size[1]}" in targets:
                    yield module, attribute, child, None


def add_lora(net: nn.Module, targets, rank: int, alpha: float, dropout: float) -> list:
    """Wrap every targeted layer of `net` (never its `classifier`) in place; returns the
    wrapped layers' names. An unknown target, or targets that match no layer of this
    network, is one clear error."""
    unknown = sorted(set(targets) - set(LORA_TARGETS))
    if unknown:
        raise ValueError(f"lora_targets {unknown}: expected names among {', '.join(LORA_TARGETS)}")
    classifier = getattr(net, "classifier", None)
    found = [*_vit_targets(net, set(targets)), *_conv_targets(net, set(targets))]
    found = [entry for entry in found if entry[2] is not classifier]
    if not found:
        raise ValueError(f"lora_targets {list(targets)} match no layer of this backbone (ViT blocks take "
                         f"{', '.join(VIT_TARGETS)}; CNNs {', '.join(CONV_TARGETS)})")
    names = {id(module): name for name, module in net.named_modules()}
    wrapped = []
    for parent, attribute, layer, slices in found:
        wrapped.append(names[id(layer)])
        setattr(parent, attribute, LoRALinear(layer, rank, alpha, dropout, slices) if isinstance(layer, nn.Linear)
                else LoRAConv2d(layer, rank, alpha, dropout))
    return wrapped


def merge_lora(net: nn.Module) -> nn.Module:
    """A copy of `net` with every LoRA layer folded into one plain layer (W + (alpha/r) B A):
    the same function, the backbone's inference cost, the backbone's state dict keys."""
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for attribute, child in module.named_children():
            if isinstance(child, LORA_LAYERS):
                setattr(module, attribute, child.merged())
    return net
