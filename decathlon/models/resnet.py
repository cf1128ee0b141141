"""The Decathlon's ResNet-26 and its residual adapters (docs/reference.md, section 3).

Layout, shared by every method in the project so they can freeze or duplicate parts:
``stem`` (a ConvBN: 3x3 conv, BN, no ReLU), ``blocks`` (an indexable ModuleList of the
residual blocks, 4 per stage at 64/128/256 channels times ``width``), ``head_bn`` and
``classifier``. Every 3x3 convolution lives in a ConvBN unit, which is also where the
per-domain residual adapters plug in:

* ``adapter="series"`` (Rebuffi 2017): 3x3 conv -> [BN -> 1x1 conv -> + input] -> BN.
* ``adapter="parallel"`` (Rebuffi 2018): (3x3 conv + 1x1 conv of the same stride) -> BN.

Both variants adapt all 25 convolutions, the stem included, as the authors' code does.
The shared part of an adapter model is the set of 3x3 weights; everything else (adapters,
BN layers, classifier) is per domain, see ``split_shared_and_domain_parameters``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ADAPTER_KINDS = (None, "series", "parallel")
STAGE_WIDTHS = (64, 128, 256)
STEM_WIDTH = 32


def scaled(channels: int, width: float) -> int:
    return int(round(channels * width))


def is_conv3x3(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3)


class SeriesAdapter(nn.Module):
    """BN -> 1x1 conv, added to its input (the series adapter's residual form)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.bn(x))


class ConvBN(nn.Module):
    """A 3x3 convolution, its optional adapter, and the BN that follows it.

    ``forward(x, bn=...)`` may substitute another BN layer: SpotTune runs a frozen,
    shared convolution with each domain's own normalisation this way.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 adapter: str | None = None):
        super().__init__()
        if adapter not in ADAPTER_KINDS:
            raise ValueError(f"adapter must be one of {ADAPTER_KINDS}, got {adapter!r}")
        self.adapter_kind = adapter
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        if adapter == "series":
            self.adapter = SeriesAdapter(out_channels)
        elif adapter == "parallel":
            self.adapter = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        else:
            self.adapter = None
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, bn: nn.Module | None = None) -> torch.Tensor:
        y = self.conv(x)
        if self.adapter_kind == "parallel":
            y = y + self.adapter(x)
        elif self.adapter_kind == "series":
            y = self.adapter(y)
        return (self.bn if bn is None else bn)(y)


class ZeroPadShortcut(nn.Module):
    """Parameter-free shortcut for a change of shape: AvgPool2d(stride), then zero channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.pad lists dimensions from the last: (W, W, H, H, C, C).
        return F.pad(self.pool(x), (0, 0, 0, 0, 0, self.extra_channels))


class BasicBlock(nn.Module):
    """conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 adapter: str | None = None):
        super().__init__()
        self.conv_bn1 = ConvBN(in_channels, out_channels, stride, adapter)
        self.conv_bn2 = ConvBN(out_channels, out_channels, 1, adapter)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)

    def norms(self) -> tuple[nn.Module, nn.Module]:
        """The block's two BN layers, in the order ``forward(norms=...)`` takes them."""
        return self.conv_bn1.bn, self.conv_bn2.bn

    def forward(self, x: torch.Tensor, norms: Sequence[nn.Module] | None = None,
                add_shortcut: bool = True) -> torch.Tensor:
        """The block; ``norms`` replaces its BN layers. ``add_shortcut=False`` returns the
        residual branch before the shortcut is added and the last ReLU applied (SpotTune's
        routed inference adds the shortcut once for the images of both branches)."""
        bn1, bn2 = norms if norms is not None else (None, None)
        y = F.relu(self.conv_bn1(x, bn1))
        y = self.conv_bn2(y, bn2)
        return F.relu(y + self.shortcut(x)) if add_shortcut else y


def pool_features(x: torch.Tensor, head_bn: nn.Module) -> torch.Tensor:
    """The head before the classifier: BN, ReLU, global average pool, flatten."""
    return F.adaptive_avg_pool2d(F.relu(head_bn(x)), 1).flatten(1)


class ResNet(nn.Module):
    """The Decathlon ResNet family: stem, three stages of BasicBlocks, head.

    ``num_classes=0`` gives a trunk whose ``forward`` returns the pooled features.
    """

    def __init__(self, blocks_per_stage: Sequence[int], num_classes: int,
                 width: float = 1.0, adapter: str | None = None):
        super().__init__()
        self.width = width
        self.adapter_kind = adapter
        in_channels = scaled(STEM_WIDTH, width)
        self.stem = ConvBN(3, in_channels, 1, adapter)
        blocks = []
        for stage_width, num_blocks in zip(STAGE_WIDTHS, blocks_per_stage, strict=True):
            out_channels = scaled(stage_width, width)
            for index in range(num_blocks):
                stride = 2 if index == 0 else 1
                blocks.append(BasicBlock(in_channels, out_channels, stride, adapter))
                in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.num_features = in_channels
        self.head_bn = nn.BatchNorm2d(in_channels)
        self.classifier = (nn.Linear(in_channels, num_classes) if num_classes > 0
                           else nn.Identity())
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled ``256 * width`` features (what the classifier sees)."""
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return pool_features(x, self.head_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def resnet26(num_classes: int, width: float = 1.0, adapter: str | None = None) -> ResNet:
    """The benchmark's ResNet-26: 1 stem conv + 24 block convs + 1 linear layer."""
    return ResNet((4, 4, 4), num_classes, width, adapter)


def conv3x3_weight_count(model: nn.Module) -> int:
    """Number of 3x3 convolution weights (5,806,944 for ResNet-26 at width 1)."""
    return sum(m.weight.numel() for m in model.modules() if is_conv3x3(m))


def adapter_weight_count(model: nn.Module) -> int:
    """Number of adapter convolution weights (645,216 parallel adapters at width 1)."""
    return sum(p.numel() for m in model.modules() if isinstance(m, ConvBN)
               and m.adapter is not None for p in m.adapter.parameters()
               if p.dim() == 4)


def split_shared_and_domain_parameters(model: nn.Module) -> tuple[dict, dict]:
    """(shared, per_domain) name -> parameter dicts.

    Shared: the 3x3 convolution weights, common to all domains in adapter methods.
    Per domain: everything else (adapters, every BN layer, the classifier).
    """
    shared_names = {f"{name}.weight" for name, m in model.named_modules() if is_conv3x3(m)}
    shared, per_domain = {}, {}
    for name, parameter in model.named_parameters():
        (shared if name in shared_names else per_domain)[name] = parameter
    return shared, per_domain


def freeze_shared_convs(model: nn.Module) -> None:
    """Stop gradients to the shared 3x3 weights (adapter training)."""
    shared, _ = split_shared_and_domain_parameters(model)
    for parameter in shared.values():
        parameter.requires_grad_(False)
