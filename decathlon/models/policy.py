"""SpotTune's policy: which residual blocks an image routes through their fine-tuned copy.

The policy network of the public code is a small ResNet of the backbone's family with
one BasicBlock per stage ([1, 1, 1]), randomly initialised, ending in a linear layer
with two logits (frozen, fine-tuned) per residual block. Variants here:

* ``PolicyNet``: trunk + head, one per domain (the paper's setting);
* ``policy_trunk`` + ``PolicyHead``: one trunk shared by all domains, a head per domain;
* ``GlobalPolicy``: one learned (num_blocks, 2) logit table per domain and no network,
  the SpotTune-Global variant (every image of a domain sees the same distribution).

``decide`` turns logits into decisions (1 = fine-tuned path).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from decathlon.models.resnet import ResNet, STAGE_WIDTHS, scaled

GUMBEL_TEMPERATURE = 5.0
DECISION_MODES = ("gumbel", "sample", "argmax")


def policy_trunk(width: float = 1.0) -> ResNet:
    """The policy's feature extractor: a [1, 1, 1] ResNet returning pooled features."""
    return ResNet((1, 1, 1), num_classes=0, width=width)


class PolicyHead(nn.Module):
    """Linear layer from trunk features to (N, num_blocks, 2) logits."""

    def __init__(self, num_features: int, num_blocks: int):
        super().__init__()
        self.num_blocks = num_blocks
        self.linear = nn.Linear(num_features, 2 * num_blocks)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).view(-1, self.num_blocks, 2)


class PolicyNet(nn.Module):
    """Per-domain policy network: image -> (N, num_blocks, 2) logits."""

    def __init__(self, num_blocks: int, width: float = 1.0):
        super().__init__()
        self.trunk = policy_trunk(width)
        self.head = PolicyHead(scaled(STAGE_WIDTHS[-1], width), num_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class GlobalPolicy(nn.Module):
    """SpotTune-Global: one learned logit table for every image of the domain.

    Starts at zero logits (each path equally likely). Decisions are still drawn per
    image during training; ``decide(..., "argmax")`` gives the one global choice.
    """

    def __init__(self, num_blocks: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_blocks, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, -1)


def decide(logits: torch.Tensor, mode: str,
           temperature: float = GUMBEL_TEMPERATURE) -> torch.Tensor:
    """(N, num_blocks, 2) logits -> (N, num_blocks) float32 decisions in {0, 1}.

    ``gumbel``: Gumbel-softmax sample, hard one-hot forward, straight-through gradient
    (training). ``sample``: the same random draw, which the public code also makes at
    test time, so its predictions change between runs; callers should record its use.
    ``argmax``: the deterministic choice of the most likely path (evaluation default).
    """
    if mode in ("gumbel", "sample"):
        return F.gumbel_softmax(logits, tau=temperature, hard=True)[..., 1].float()
    if mode == "argmax":
        return logits.argmax(-1).float()
    raise ValueError(f"decision mode must be one of {DECISION_MODES}, got {mode!r}")


# Policy-free modes: all frozen, all fine-tuned, and the paper's random-policy ablation.
FIXED_MODES = ("frozen", "tuned", "random")
FORWARD_MODES = DECISION_MODES + FIXED_MODES


def block_decisions(x: torch.Tensor, num_blocks: int, mode: str, logits, temperature: float) -> torch.Tensor:
    """(N, num_blocks) float32 decisions in {0, 1} (1 = fine-tuned path) for the images `x`:
    the policy's (`logits()`, called for the decision modes only) or a fixed mode's."""
    n = x.shape[0]
    if mode in DECISION_MODES:
        return decide(logits(), mode, temperature)
    if mode == "frozen":
        return x.new_zeros(n, num_blocks, dtype=torch.float32)
    if mode == "tuned":
        return x.new_ones(n, num_blocks, dtype=torch.float32)
    if mode == "random":
        return torch.bernoulli(x.new_full((n, num_blocks), 0.5, dtype=torch.float32))
    raise ValueError(f"mode must be one of {FORWARD_MODES}, got {mode!r}")


def budget_loss(decisions: torch.Tensor, budget: float, budget_weight: float = 1.0,
                entropy_weight: float = 0.0) -> torch.Tensor:
    """SpotTune-Global's regulariser on (N, num_blocks) decisions.

    ``budget_weight * (sum_l v_l - budget) ** 2 + entropy_weight * sum_l H(v_l)``, where
    v_l is the fraction of the batch taking the fine-tuned path of block l and H the
    binary entropy, which pushes each block towards always or never being fine-tuned.
    This is the form recalled in docs/reference.md, section 3; check the paper for weights.
    Gradients reach the policy through the straight-through decisions.
    """
    usage = decisions.mean(0)
    budget_term = (usage.sum() - budget) ** 2
    entropy = torch.distributions.Bernoulli(probs=usage).entropy().sum()
    return budget_weight * budget_term + entropy_weight * entropy
