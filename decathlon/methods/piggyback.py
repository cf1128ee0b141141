"""Piggyback (Mallya, Davis and Lazebnik, ECCV 2018; docs/reference.md, section 5.1).

A binary mask over every frozen convolution weight of the pretrained ResNet-26, learned
through real-valued scores (threshold, straight-through gradient: decathlon/models/masked.py),
with a new classifier per domain and, as in the paper's Decathlon entry, the domain's own BN
layers (`train_bn`; the public training script leaves them frozen: `train_bn=false`).

As the public code trains it: Adam (no weight decay) for the mask scores (and the BN layers
under `train_bn`) at `mask_lr` and for the classifier at `lr`, both decayed by the
engine's schedule. A mask counts 1 bit per weight in #par (1/32 of a float parameter), as the
paper counts it; BN layers and classifier count as floats.
"""
from __future__ import annotations

import torch
from torch import nn

from decathlon.jobdir import PIGGYBACK_FILE
from decathlon.methods.base import Method, new_backbone
from decathlon.models.masked import MASK_BITS_PER_FLOAT, mask_convolutions, masked_convolutions, packed_masks


class MaskedResNet(nn.Module):
    """A ResNet-26 whose convolutions are masked; without `train_bn` its BN layers stay in
    eval mode (the public code's `train_nobn`: statistics and affine parameters frozen)."""

    def __init__(self, resnet: nn.Module, train_bn: bool):
        super().__init__()
        self.resnet, self.train_bn = resnet, train_bn
        if not train_bn:
            for module in self.norms():
                module.requires_grad_(False)

    @property
    def classifier(self) -> nn.Module:
        return self.resnet.classifier

    def norms(self) -> list:
        return [module for module in self.resnet.modules() if isinstance(module, nn.BatchNorm2d)]

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.train_bn:
            for module in self.norms():
                module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resnet(x)


class Piggyback(Method):
    """Learned binary masks on the frozen backbone; BN layers and classifier per domain."""
    name = "piggyback"

    def build(self, backbone_state):
        resnet = new_backbone(self.hparams, self.num_classes, backbone_state)
        mask_convolutions(resnet, self.hparams["mask_scale"], self.hparams["mask_threshold"])
        return MaskedResNet(resnet, self.hparams["train_bn"])

    def param_groups(self) -> list:
        classifier = list(self.net.classifier.parameters())
        chosen = {id(p) for p in classifier}
        masks = [p for p in self.net.parameters() if p.requires_grad and id(p) not in chosen]
        decay = self.hparams["weight_decay"]
        return [{"params": masks, "lr": self.hparams["mask_lr"], "weight_decay": decay},
                {"params": classifier, "lr": self.hparams["lr"], "weight_decay": decay}]

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam, as the public code trains masks and classifier (two Adams with default
        betas there; one Adam with two groups is the same update). `capturable` is set to
        the parameters' device at every step (see `update`)."""
        return torch.optim.Adam(self.param_groups(), capturable=False)

    def update(self, *batch) -> dict:
        """On CUDA, Adam must be `capturable` (its step count on the device) for the engine's
        graph-captured step; on a CPU it must not be. The method is built on the CPU and
        moved, so the flag follows the parameters here; the first steps run eagerly (the
        engine's warm-up), which is where Adam creates its state on the right device."""
        on_cuda = self.net.classifier.weight.is_cuda
        for group in self.optimizer.param_groups:
            group["capturable"] = on_cuda
        return super().update(*batch)

    def stored_parameters(self) -> dict:
        """Masks at 1 bit per weight; BN layers (under `train_bn`) and classifier as floats."""
        masks = sum(conv.mask_scores.numel() for conv in masked_convolutions(self.net).values())
        norms = sum(p.numel() for m in self.net.norms() for p in m.parameters()) if self.net.train_bn else 0
        classifier = sum(p.numel() for p in self.net.classifier.parameters())
        return {"total": masks / MASK_BITS_PER_FLOAT + norms + classifier, "classifier": classifier}

    def exports(self) -> dict:
        """What the domain ships beside the backbone: its masks packed 8 per byte, its BN
        layers (under `train_bn`, running statistics included) and its classifier."""
        norms = ({name: tensor.detach().cpu() for name, tensor in self.net.resnet.state_dict().items()
                  if name.rpartition(".")[0] in self._norm_names()} if self.net.train_bn else {})
        return {PIGGYBACK_FILE: {"masks": packed_masks(self.net.resnet), "norms": norms,
                                 "classifier": {k: v.detach().cpu() for k, v in self.net.classifier.state_dict().items()}}}

    def _norm_names(self) -> set:
        return {name for name, module in self.net.resnet.named_modules() if isinstance(module, nn.BatchNorm2d)}
