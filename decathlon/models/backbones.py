"""Backbone architectures: the benchmark's ResNet-26, or any model timm can create.

An architecture is named by the hyperparameter `arch`: 'resnet26' (decathlon.models.resnet)
or 'timm:<name>' for any `timm.create_model` name ('timm:vit_small_patch16_224',
'timm:resnet50', ...). A timm backbone is wrapped in a `TimmNet`, whose layout every
method can rely on, as they rely on ResNet-26's: `body` (the timm model with its head
removed, `num_classes=0`: forward gives the pooled features) and `classifier` (a new
nn.Linear per domain).

Input size. The Decathlon's images are 72 px on the shorter side; the loaders give 64 px
crops or 72 px centres (daimlerpedcls: 144x72). `input_size` None feeds them natively
(a ViT is then made with a dynamic image size: its position embedding is interpolated to
each batch's grid, and an image whose side is no multiple of the patch is padded at its
right and bottom to the next one, timm's `dynamic_img_pad`; `patch_size` 8 fits 64, 72 and
144 exactly); an integer N resizes
every batch to NxN (bilinear, as torchvision's Resize) before the body. Both are recorded.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from decathlon.models.resnet import resnet26

RESNET26 = "resnet26"
TIMM_PREFIX = "timm:"
# The side a ViT's position embedding is made for when it sees the images natively: the
# loaders' 72 px (other sizes interpolate it, `dynamic_img_size`).
NATIVE_SIDE = 72


def is_timm(arch: str) -> bool:
    return arch.startswith(TIMM_PREFIX)


def timm_name(arch: str) -> str:
    """'timm:vit_tiny_patch16_224' -> 'vit_tiny_patch16_224', after checking timm knows it."""
    import timm   # imported here: a ResNet-26 run never pays for timm's import

    name = arch[len(TIMM_PREFIX):]
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        hint = f"; similar names: {', '.join(close)}" if close else ""
        raise ValueError(f"backbone arch {arch!r}: timm has no model {name!r}{hint}")
    return name


def check_arch(arch: str) -> str:
    """The arch if it names a backbone this suite can build, else one clear error."""
    if arch == RESNET26:
        return arch
    if not is_timm(arch):
        raise ValueError(f"backbone arch {arch!r}: expected 'resnet26' or 'timm:<model name>' "
                         "(e.g. timm:vit_small_patch16_224, timm:resnet50)")
    timm_name(arch)
    return arch


# timm families whose models take `img_size`, `patch_size`, `dynamic_img_size` and `dynamic_img_pad`.
VIT_MODULES = ("timm.models.vision_transformer", "timm.models.deit", "timm.models.eva")


def is_vit(arch: str) -> bool:
    from timm.models import model_entrypoint

    return is_timm(arch) and model_entrypoint(timm_name(arch)).__module__ in VIT_MODULES


def resized(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """The batch `x` at size x size (bilinear), or as it is where `size` is None or met."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class TimmNet(nn.Module):
    """A timm model without its head (`body`), then a new linear `classifier`.

    `input_size`: None (the loader's images as they are) or N (resized to NxN first)."""

    def __init__(self, body: nn.Module, num_classes: int, input_size: int | None):
        super().__init__()
        self.body = body
        self.input_size = input_size
        self.classifier = nn.Linear(body.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (what the classifier sees)."""
        return self.body(self.resize(x))

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        return resized(x, self.input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def timm_body(arch: str, input_size: int | None = None, patch_size: int | None = None,
              arch_kwargs: dict | None = None, pretrained: bool = False) -> nn.Module:
    """The timm model of `arch` with no head; `pretrained` uses timm's own hub loading
    (network; only when the user asked for it)."""
    import timm

    name = timm_name(arch)
    kwargs = dict(arch_kwargs or {})
    if is_vit(arch):
        native = input_size is None
        kwargs.update(img_size=input_size or NATIVE_SIDE, dynamic_img_size=native, dynamic_img_pad=native)
        if patch_size:
            kwargs["patch_size"] = patch_size
    elif patch_size:
        raise ValueError(f"backbone arch {arch!r} has no patches: patch_size applies to ViTs only")
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    except TypeError as err:   # a keyword of arch_kwargs the model does not take
        raise ValueError(f"backbone arch {arch!r} with arch_kwargs {arch_kwargs}: {err}") from None


def check_backbone_settings(arch: str, input_size: int | None, patch_size: int | None,
                            arch_kwargs: dict | None) -> None:
    """The arch, and no timm-only setting on ResNet-26 (which sees the loaders' images as
    they are and takes no keywords): one clear error rather than a setting recorded but unused."""
    check_arch(arch)
    if arch == RESNET26:
        unused = [key for key, value in (("input_size", input_size), ("patch_size", patch_size),
                                         ("arch_kwargs", arch_kwargs)) if value]
        if unused:
            raise ValueError(f"hyperparameter(s) {', '.join(unused)} apply to timm backbones (--backbone-arch "
                             f"timm:<name>), not to resnet26, which takes the loaders' images as they are")


def build_network(arch: str, num_classes: int, width: float = 1.0, input_size: int | None = None,
                  patch_size: int | None = None, arch_kwargs: dict | None = None, **resnet_kwargs) -> nn.Module:
    """A randomly initialised network of `arch` with a `num_classes` classifier."""
    check_backbone_settings(arch, input_size, patch_size, arch_kwargs)
    if arch == RESNET26:
        return resnet26(num_classes, width=width, **resnet_kwargs)
    if resnet_kwargs:
        raise ValueError(f"backbone arch {arch!r}: {', '.join(resnet_kwargs)} exist for resnet26 only")
    return TimmNet(timm_body(arch, input_size, patch_size, arch_kwargs), num_classes, input_size)


def network_of(hparams: dict, num_classes: int, **resnet_kwargs) -> nn.Module:
    """`build_network` with a job's hyperparameters (arch, width, input_size, patch_size, arch_kwargs)."""
    return build_network(hparams.get("arch", RESNET26), num_classes, hparams["width"], hparams.get("input_size"),
                         hparams.get("patch_size"), hparams.get("arch_kwargs"), **resnet_kwargs)


def reference_parameter_count(hparams: dict) -> int:
    """The unit of #par for this job's backbone: its parameters without the classifier
    (one ResNet-26 at this width for the benchmark's own rows)."""
    net = network_of(hparams, 1)
    return sum(p.numel() for name, p in net.named_parameters() if not name.startswith("classifier."))
