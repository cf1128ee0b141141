"""Visual Prompt Tuning (Jia et al., ECCV 2022) on a timm VisionTransformer.

`tokens` learned prompt vectors are inserted right after the prefix tokens (CLS, and a
DeiT's distillation or register tokens) once the position embedding is added: the sequence
is [prefix, prompts, patches], as KMnP/vpt's `incorporate_prompt` puts them after CLS
(src/models/vit_prompt/vit.py, lines 75-87). 'shallow' inserts them at the first block's
input only; 'deep' gives every block its own prompts, which replace the previous block's
prompt outputs (`forward_deep_prompt`, lines 102-130). The prompts carry no position
embedding, are initialised uniform in +-sqrt(6 / (3 * patch_h * patch_w + dim)) (lines
56-70) and pass through dropout (`prompt_dropout`). The backbone stays frozen and in eval
mode, as the code's `train` keeps encoder and embeddings (lines 89-100).

The prompts' outputs are dropped before the backbone's own pooling (its CLS token for
ViTs pooled by 'token', the code's `x[:, 0]`), so a prompted network with 0 tokens is the
backbone, and prompts reach the features only through attention (`forward_tokens` with
a mask that hides them is the backbone: tested).
"""
from __future__ import annotations

import math

import torch
from torch import nn

VPT_MODES = ("shallow", "deep")


def _check_vit(body: nn.Module, method: str) -> None:
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(body, VisionTransformer):
        raise ValueError(f"{method} needs a timm VisionTransformer body (vit_*, deit_*), not {type(body).__name__}")


class PromptedViT(nn.Module):
    """A TimmNet (`net`: frozen ViT `body` + `classifier`) with visual prompts (`prompts`:
    one set per prompted block, (layers, tokens, dim))."""

    def __init__(self, net: nn.Module, tokens: int, mode: str, dropout: float):
        super().__init__()
        _check_vit(net.body, "vpt")
        if mode not in VPT_MODES:
            raise ValueError(f"vpt_mode {mode!r}: expected one of {', '.join(VPT_MODES)}")
        if tokens < 0:
            raise ValueError(f"vpt_tokens must be 0 or more, got {tokens}")
        self.net, self.mode, self.tokens = net, mode, tokens
        net.body.requires_grad_(False)
        body = net.body
        layers = len(body.blocks) if mode == "deep" else 1
        self.prompts = nn.Parameter(torch.zeros(layers, tokens, body.embed_dim))
        patch = body.patch_embed.patch_size
        bound = math.sqrt(6.0 / (3 * patch[0] * patch[1] + body.embed_dim))
        nn.init.uniform_(self.prompts, -bound, bound)
        self.dropout = nn.Dropout(dropout)

    @property
    def classifier(self) -> nn.Module:
        return self.net.classifier

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.body.eval()   # frozen: its dropout, drop-path and statistics stay as at test time
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The body's tokens before its first block (timm's forward_features up to `blocks`)."""
        body = self.net.body
        return body.norm_pre(body.patch_drop(body._pos_embed(body.patch_embed(self.net.resize(x)))))

    def with_prompts(self, tokens: torch.Tensor, block: int) -> torch.Tensor:
        """The input of block `block`: prompts inserted (block 0), replaced (deep) or kept."""
        if block > 0 and self.mode == "shallow":
            return tokens
        prefix = self.net.body.num_prefix_tokens
        prompts = self.dropout(self.prompts[block]).expand(tokens.shape[0], -1, -1)
        rest = tokens[:, prefix + (self.tokens if block > 0 else 0):]
        return torch.cat((tokens[:, :prefix], prompts, rest), dim=1)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """The prompts' outputs dropped, then the body's final norm and pooling."""
        body = self.net.body
        prefix = body.num_prefix_tokens
        tokens = torch.cat((tokens[:, :prefix], tokens[:, prefix + self.tokens:]), dim=1)
        return body.forward_head(body.norm(tokens), pre_logits=True)

    def forward_tokens(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features; `attn_mask` (bool, True = may attend) goes to every block."""
        tokens = self.embed(x)
        for index, block in enumerate(self.net.body.blocks):
            tokens = self.with_prompts(tokens, index)
            tokens = block(tokens) if attn_mask is None else block(tokens, attn_mask=attn_mask)
        return self.pool(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_tokens(x))
