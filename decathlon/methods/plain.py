"""Methods on one plain or adapted network per domain (docs/reference.md, section 3): scratch,
finetune, feature_extractor and bn_adapt (norm-only) on any backbone arch, the adapters on ResNet-26."""
from __future__ import annotations

from torch import nn

from decathlon.methods.base import Method, new_backbone
from decathlon.models import freeze_shared_convs


class Scratch(Method):
    """The backbone network trained from random initialisation on the domain alone."""
    name = "scratch"
    backbones = "any"
    uses_backbone = False

    def build(self, backbone_state):
        return new_backbone(self.hparams, self.num_classes, None)


class Finetune(Method):
    """The Decathlon's baseline: every weight of the pretrained network is fine-tuned."""
    name = "finetune"
    backbones = "any"

    def build(self, backbone_state):
        return new_backbone(self.hparams, self.num_classes, backbone_state)


class _FrozenTrunk(nn.Module):
    """Pretrained features kept in eval mode (BN statistics frozen) + a new classifier."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.trunk = net
        self.classifier = net.classifier
        net.classifier = nn.Identity()
        self.trunk.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.trunk.eval()
        return self

    def forward(self, x):
        return self.classifier(self.trunk(x))


class FeatureExtractor(Method):
    """Only the last layer is trained on the frozen pretrained features."""
    name = "feature_extractor"
    backbones = "any"

    def build(self, backbone_state):
        return _FrozenTrunk(new_backbone(self.hparams, self.num_classes, backbone_state))


# The normalisation layers norm-only adaptation trains (timm's BatchNormAct2d, LayerNorm2d,
# ... subclass these).
NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def unfreeze_norms(net: nn.Module) -> nn.Module:
    """Make every normalisation layer of `net` (NORM_LAYERS) trainable again."""
    for module in net.modules():
        if isinstance(module, NORM_LAYERS):
            module.requires_grad_(True)
    return net


class BNAdapt(Method):
    """Norm-only: the pretrained network frozen but for its normalisation layers' affine
    parameters (BatchNorm, LayerNorm, GroupNorm; BN statistics are re-estimated in
    training) and the classifier, per domain. On ResNet-26 exactly its BN layers: the
    convolutions, its only other weights, stay frozen."""
    name = "bn_adapt"
    backbones = "any"

    def build(self, backbone_state):
        net = new_backbone(self.hparams, self.num_classes, backbone_state)
        unfreeze_norms(net.requires_grad_(False))
        net.classifier.requires_grad_(True)
        return net


class SeriesAdapters(Method):
    """Rebuffi et al. 2017: a BN + 1x1 conv adapter after each frozen 3x3 conv."""
    name = "series_adapters"
    adapter = "series"

    def build(self, backbone_state):
        net = new_backbone(self.hparams, self.num_classes, backbone_state, adapter=self.adapter)
        freeze_shared_convs(net)
        return net


class ParallelAdapters(SeriesAdapters):
    """Rebuffi et al. 2018: a 1x1 conv in parallel with each frozen 3x3 conv."""
    name = "parallel_adapters"
    adapter = "parallel"
