"""SpotTune over the residual blocks of any supported timm backbone (decathlon.models.spottune_blocks).

The frozen pretrained body is held once (requires_grad False, never modified). Per domain
(`BlockDomain`): a fine-tuned copy of each residual block, initialised from the pretrained
one; a policy on the image (the paper's small ResNet, `PolicyNet`, or SpotTune-Global's
table); a new classifier; and its own copy of the stem and of every normalisation layer of
the frozen path (`own`). The last follows the public code, which keeps the stem convolution
and every BN layer trainable; a ViT's LayerNorms are treated as its BNs are (per-channel
scale and shift, the layers norm-only tuning trains), the stem is its input embedding.

Block l of image n: x_{l+1} = d_{n,l} F_tuned_l(x_l) + (1 - d_{n,l}) F_frozen_l(x_l), the
decision broadcast over tokens (ViT) or C, H, W (CNN); Gumbel-softmax hard decisions with
a straight-through gradient in training (decathlon.models.policy.decide). The frozen path
runs the shared blocks with the domain's norm tensors through `torch.func.functional_call`,
so the body is never copied per domain. Training computes both branches; an evaluation
forward with decisions that carry no gradient runs, per block, each image's chosen branch
only (so the FLOP counter sees what the policy costs).

The policy sees the loader's image (64 or 72 px), before any resize to `input_size`.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call

from decathlon.models.backbones import TimmNet, resized
from decathlon.models.domain_branch import DomainParts, TunedBlocks
from decathlon.models.policy import (GUMBEL_TEMPERATURE, GlobalPolicy, PolicyNet,
                                     block_decisions)
from decathlon.models.spottune_blocks import ResidualBody, residual_body

BLOCK_POLICY_KINDS = ("per_domain", "global")


def mirror(source: nn.Module, names: list) -> nn.Module:
    """A module holding trainable copies of `source`'s parameters and copies of its buffers
    named in `names`, under the same dotted names (so they override `source`'s directly)."""
    params = dict(source.named_parameters())
    buffers = dict(source.named_buffers())
    root = nn.Module()
    for name in names:
        *path, leaf = name.split(".")
        node = root
        for part in path:
            if part not in node._modules:
                node.add_module(part, nn.Module())
            node = node._modules[part]
        if name in params:
            node.register_parameter(leaf, nn.Parameter(params[name].detach().clone()))
        else:
            node.register_buffer(leaf, buffers[name].detach().clone())
    return root


class BlockDomain(TunedBlocks):
    """Everything one domain adds to the shared body; saved and loaded on its own."""

    def __init__(self, backbone: ResidualBody, num_classes: int, policy_kind: str, policy: nn.Module):
        super().__init__()
        self.num_classes = num_classes
        self.policy_kind = policy_kind
        self.own = mirror(backbone.body, backbone.domain_tensor_names())
        blocks = backbone.blocks()
        self.tuned_blocks = nn.ModuleDict({str(i): copy.deepcopy(block) for i, block in enumerate(blocks)})
        self.policy = policy
        self.classifier = nn.Linear(backbone.num_features, num_classes)
        self.requires_grad_(True)
        self.register_buffer("tuned_mask", torch.ones(len(blocks)), persistent=False)

    def overrides(self) -> dict:
        """The domain's tensors by their names in the shared `ResidualBody`."""
        own = dict(self.own.named_parameters())
        own.update(self.own.named_buffers())
        return {f"body.{name}": tensor for name, tensor in own.items()}

    def get_extra_state(self) -> dict:
        return {"num_classes": self.num_classes, "policy": self.policy_kind, "tuned_blocks": self.stored_tuned_blocks()}

    def set_extra_state(self, state: dict) -> None:
        if state != self.get_extra_state():
            raise ValueError(f"domain state describes {state}, this branch is {self.get_extra_state()}")


def _mixed(h, decision, frozen, tuned, kwargs):
    """d * tuned(h) + (1 - d) * frozen(h), the image's decision broadcast over the rest."""
    a = decision.view(-1, *[1] * (h.dim() - 1)).to(h.dtype)
    return a * tuned(h, **kwargs) + (1 - a) * frozen(h, **kwargs)


def _routed(h, decision, frozen, tuned, kwargs):
    """The same with each image through its chosen branch only (no gradient to decisions)."""
    take = decision.bool()
    if bool(take.all()):
        return tuned(h, **kwargs)
    if not bool(take.any()):
        return frozen(h, **kwargs)
    tuned_out, frozen_out = tuned(h[take], **kwargs), frozen(h[~take], **kwargs)
    out = tuned_out.new_empty((h.shape[0], *tuned_out.shape[1:]))
    out[take], out[~take] = tuned_out, frozen_out
    return out


class BlockSpotTuneNet(DomainParts, nn.Module):
    """One frozen timm body (from a `TimmNet`, its classifier left out), any number of
    SpotTune domains. `policy`: 'per_domain' (a `PolicyNet` of width `policy_width` per
    domain, the paper) or 'global' (SpotTune-Global's learned table)."""

    def __init__(self, backbone: TimmNet, policy: str = "per_domain", policy_width: float = 1.0,
                 temperature: float = GUMBEL_TEMPERATURE, arch: str = ""):
        super().__init__()
        if policy not in BLOCK_POLICY_KINDS:
            raise ValueError(f"SpotTune on a timm backbone: policy must be one of {BLOCK_POLICY_KINDS}, got {policy!r}")
        self.backbone = residual_body(backbone.body, arch).requires_grad_(False)
        self.input_size = backbone.input_size
        self.policy_kind, self.policy_width, self.temperature = policy, policy_width, temperature
        self.num_blocks = len(self.backbone.blocks())
        self.domains = nn.ModuleDict()

    def add_domain(self, name: str, num_classes: int) -> BlockDomain:
        """Add a domain initialised from the backbone (fine-tuned blocks = pretrained)."""
        if name in self.domains:
            raise ValueError(f"domain {name!r} already exists")
        policy = (PolicyNet(self.num_blocks, self.policy_width) if self.policy_kind == "per_domain"
                  else GlobalPolicy(self.num_blocks))
        branch = BlockDomain(self.backbone, num_classes, self.policy_kind, policy)
        self.domains[name] = branch.to(next(self.backbone.parameters()).device)
        return branch

    def policy_logits(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """(N, num_blocks, 2) logits (frozen, fine-tuned), channels_last as SpotTuneNet's."""
        return self.domains[domain].policy(x.contiguous(memory_format=torch.channels_last))

    def decisions(self, x: torch.Tensor, domain: str, mode: str) -> torch.Tensor:
        """(N, num_blocks) float32 decisions in {0, 1} (1 = fine-tuned path)."""
        chosen = block_decisions(x, self.num_blocks, mode, lambda: self.policy_logits(x, domain), self.temperature)
        return chosen * self.domains[domain].tuned_mask   # pruned copies: the frozen path only

    def features(self, x: torch.Tensor, domain: str, decisions: torch.Tensor) -> torch.Tensor:
        """Pooled features under `decisions`; routed when they carry no gradient in eval."""
        branch = self.domains[domain]
        routed = not self.training and not decisions.requires_grad

        def run_block(index, frozen, h, kwargs):
            tuned = branch.tuned_block(index)
            if tuned is None:
                return frozen(h, **kwargs)
            mix = _routed if routed and not kwargs else _mixed
            return mix(h, decisions[:, index], frozen, tuned, kwargs)

        return functional_call(self.backbone, branch.overrides(), (resized(x, self.input_size), run_block))

    def forward(self, x: torch.Tensor, domain: str, mode: str | None = None) -> tuple:
        """(logits, decisions); `mode` defaults to 'gumbel' in training, 'argmax' else."""
        mode = mode or ("gumbel" if self.training else "argmax")
        decisions = self.decisions(x, domain, mode)
        return self.domains[domain].classifier(self.features(x, domain, decisions)), decisions

    def parameter_groups(self, domain: str) -> dict:
        """Trainable parameters of a domain: 'network' and 'policy' (own lr and decay)."""
        branch = self.domains[domain]
        policy = list(branch.policy.parameters())
        policy_ids = {id(p) for p in policy}
        return {"network": [p for p in branch.parameters() if id(p) not in policy_ids], "policy": policy}

