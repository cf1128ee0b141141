"""AdaptFormer (Chen et al., NeurIPS 2022): a bottleneck adapter beside each block's MLP.

    x' = x + Attn(LN1(x));   out = x' + MLP(LN2(x')) + s * up(ReLU(down(a)))

as ShoufaChen/AdaptFormer's models/custom_modules.py `Block.forward` (lines 76-94) with its
`Adapter` (models/adapter.py): `down` to `dim` features, ReLU, dropout, `up` back, times the
scale s (main_image.py: `ffn_adapter_scalar` "0.1", `ffn_num` 64, dropout 0.1; init "lora":
down kaiming-uniform, up and both biases zero, so the untrained block is the backbone's).
The adapter's input `a` is `adapter_input`: 'block' = x', the block's MLP input before LN2,
as the released code runs it (`ffn_adapter_layernorm_option="none"`); 'mlp' = LN2(x'), the
MLP's normalised input, as the paper's equation writes it (docs/reference_peft.md, section 4).

The block's own layers run as timm's `Block.forward` (timm/models/vision_transformer.py)
composes them; only timm's plain `Block` is adapted.
"""
from __future__ import annotations

import math

import torch
from torch import nn

ADAPTER_INPUTS = ("block", "mlp")


class Adapter(nn.Module):
    """up(dropout(ReLU(down(x)))) * scale, up-projection zero-initialised."""

    def __init__(self, features: int, dim: int, scale: float, dropout: float):
        super().__init__()
        self.down, self.up = nn.Linear(features, dim), nn.Linear(dim, features)
        self.dropout, self.scale = nn.Dropout(dropout), scale
        with torch.no_grad():   # the code's init_option "lora"
            nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.dropout(torch.relu(self.down(x)))) * self.scale


class AdaptedBlock(nn.Module):
    """A frozen timm ViT `Block` with a parallel `adapter` beside its MLP."""

    def __init__(self, block: nn.Module, adapter: Adapter, adapter_input: str):
        super().__init__()
        self.block, self.adapter, self.adapter_input = block, adapter, adapter_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        x = x + b.drop_path1(b.ls1(b.attn(b.norm1(x))))
        normed = b.norm2(x)
        adapted = self.adapter(x if self.adapter_input == "block" else normed)
        return x + b.drop_path2(b.ls2(b.mlp(normed))) + adapted


def add_adapters(body: nn.Module, dim: int, scale: float, dropout: float, adapter_input: str) -> None:
    """Freeze the timm VisionTransformer `body` and put an adapter beside every block's MLP."""
    from timm.models.vision_transformer import Block, VisionTransformer

    if not isinstance(body, VisionTransformer):
        raise ValueError(f"adaptformer needs a timm VisionTransformer body (vit_*, deit_*), not {type(body).__name__}")
    if adapter_input not in ADAPTER_INPUTS:
        raise ValueError(f"adapter_input {adapter_input!r}: expected one of {', '.join(ADAPTER_INPUTS)}")
    others = {type(block).__name__ for block in body.blocks if type(block) is not Block}
    if others:
        raise ValueError(f"adaptformer adapts timm's plain ViT Block, not {', '.join(sorted(others))}")
    body.requires_grad_(False)
    for index, block in enumerate(body.blocks):
        body.blocks[index] = AdaptedBlock(block, Adapter(body.embed_dim, dim, scale, dropout), adapter_input)
