"""Where a timm backbone's residual blocks are: the sequence SpotTune duplicates.

SpotTune (Guo et al., CVPR 2019, section 3.1) decides per image and residual block whether
the frozen pretrained block or its fine-tuned copy runs. A `ResidualBody` sees a timm model
(created with `num_classes=0`, decathlon.models.backbones) as stem -> steps -> head, running
the model's own modules in the order its `forward_features` and `forward_head` do; each
step is a residual block or, between them, a layer that is no residual unit:

* ViT / DeiT / EVA (timm vision_transformer, deit, eva): each of `blocks` is one unit,
  x -> x + attn(norm1(x)) -> x + mlp(norm2(x)); the stem is the input embedding (patch
  embedding, class/register tokens, position embedding, norm_pre); the head the final norm
  and the body's pooling (`forward_head`). An EVA block also takes the rotary embedding.
* timm ResNets (resnet, resnext, se/eca variants): each BasicBlock / Bottleneck of
  layer1..layer4, its projection shortcut included; the stem is conv1 + bn1 (+ max pool).
* ConvNeXt: each block of `stages[i].blocks`; a stage's downsampling layer runs between
  them as a fixed step.

`domain_tensor_names` lists what a SpotTune domain owns a copy of (decathlon.models.
spottune_blocks_net): the stem and every normalisation layer outside the blocks' fine-tuned
copies, as the public code trains its stem convolution and every BN layer.
"""
from __future__ import annotations

import torch
from torch import nn

SUPPORTED = ("ViT/DeiT/EVA (timm vision_transformer, deit, eva: blocks)",
             "ResNet/ResNeXt (timm resnet: layer1-layer4)", "ConvNeXt (timm convnext: stages[i].blocks)")


def norm_types() -> tuple:
    """Normalisation layers (their parameters and statistics are each domain's own)."""
    from timm.layers import RmsNorm, RmsNorm2d, SimpleNorm, SimpleNorm2d

    return (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm, nn.GroupNorm,
            nn.RMSNorm, RmsNorm, RmsNorm2d, SimpleNorm, SimpleNorm2d)


class ResidualBody(nn.Module):
    """A timm body as stem -> steps -> head; `forward(x, run_block)` calls
    `run_block(index, block, h, kwargs)` for each residual block (the caller mixes the
    frozen block with its fine-tuned copy) and runs the other steps itself."""

    family = ""
    stem_names: tuple = ()   # the body's attributes that make its stem

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    @property
    def num_features(self) -> int:
        return self.body.num_features

    def stem(self, x: torch.Tensor) -> tuple:
        """(h, kwargs of the blocks); a subclass's."""
        raise NotImplementedError

    def steps(self) -> list:
        """[(module, is_residual_block)] in forward order; a subclass's."""
        raise NotImplementedError

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.body.forward_head(h)

    def block_kwargs(self, index: int, kwargs: dict) -> dict:
        return kwargs

    def blocks(self) -> list:
        return [module for module, residual in self.steps() if residual]

    def forward(self, x: torch.Tensor, run_block) -> torch.Tensor:
        h, kwargs = self.stem(x)
        index = 0
        for module, residual in self.steps():
            if residual:
                h = run_block(index, module, h, self.block_kwargs(index, kwargs))
                index += 1
            else:
                h = module(h)
        return self.head(h)

    def domain_tensor_names(self) -> list:
        """Names (relative to `body`) of the stem's tensors and of every normalisation
        layer's parameters and buffers."""
        prefixes = tuple(f"{name}." for name in self.stem_names)
        named = dict(self.body.named_parameters())
        named.update(self.body.named_buffers())
        norms = tuple(f"{name}." for name, m in self.body.named_modules() if name and isinstance(m, norm_types()))
        return [name for name in named if name.startswith(prefixes + norms) or name in self.stem_names]


class VitBody(ResidualBody):
    family = "vit"
    stem_names = ("patch_embed", "cls_token", "reg_token", "pos_embed", "norm_pre")

    def stem(self, x):
        body = self.body
        h = body._pos_embed(body.patch_embed(x))
        if isinstance(h, tuple):   # EVA: (tokens, rotary embedding of the grid)
            h, rope = h
            return body.norm_pre(h), {"rope": rope}
        return body.norm_pre(body.patch_drop(h)), {}

    def block_kwargs(self, index, kwargs):
        if kwargs and getattr(self.body, "rope_mixed", False) and kwargs["rope"] is not None:
            return {"rope": kwargs["rope"][index]}   # EVA's depth-dependent rotary embedding
        return kwargs

    def steps(self):
        return [(block, True) for block in self.body.blocks]

    def head(self, h):
        return self.body.forward_head(self.body.norm(h))


class ResNetBody(ResidualBody):
    family = "resnet"
    stem_names = ("conv1", "bn1")

    def stem(self, x):
        body = self.body
        return body.maxpool(body.act1(body.bn1(body.conv1(x)))), {}

    def steps(self):
        return [(block, True) for layer in (self.body.layer1, self.body.layer2, self.body.layer3, self.body.layer4)
                for block in layer]


class ConvNeXtBody(ResidualBody):
    family = "convnext"
    stem_names = ("stem",)

    def stem(self, x):
        return self.body.stem(x), {}

    def steps(self):
        return [step for stage in self.body.stages
                for step in [(stage.downsample, False)] + [(block, True) for block in stage.blocks]]

    def head(self, h):
        return self.body.forward_head(self.body.norm_pre(h))


def residual_body(body: nn.Module, arch: str = "") -> ResidualBody:
    """The `ResidualBody` of a timm model, or one clear error naming the families supported."""
    from timm.models.convnext import ConvNeXt
    from timm.models.eva import Eva
    from timm.models.resnet import ResNet
    from timm.models.vision_transformer import VisionTransformer

    for kinds, layout in (((VisionTransformer, Eva), VitBody), ((ResNet,), ResNetBody), ((ConvNeXt,), ConvNeXtBody)):
        if isinstance(body, kinds):
            return layout(body)
    what = f"backbone arch {arch!r}" if arch else "this backbone"
    raise ValueError(f"SpotTune over residual blocks: {what} is a {type(body).__module__}.{type(body).__name__}, "
                     f"whose residual blocks this suite does not know; supported: {'; '.join(SUPPORTED)}")
