"""What one SpotTune domain adds to the shared, frozen backbone (decathlon.models.spottune)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from decathlon.models.resnet import ResNet


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class TunedBlocks(nn.Module):
    """A SpotTune domain's fine-tuned block copies, `tuned_blocks` keyed by block index (so
    blocks a policy never uses can be dropped), and `tuned_mask` (1 where a copy is kept);
    the subclass creates both."""

    def tuned_block(self, index: int) -> nn.Module | None:
        key = str(index)
        return self.tuned_blocks[key] if key in self.tuned_blocks else None

    def stored_tuned_blocks(self) -> list[int]:
        return sorted(int(key) for key in self.tuned_blocks)

    def keep_tuned_blocks(self, indices) -> None:
        """Drop every fine-tuned block not in ``indices``; those blocks become frozen."""
        keep = {int(i) for i in indices}
        for index in self.stored_tuned_blocks():
            if index not in keep:
                del self.tuned_blocks[str(index)]
        stored = set(self.stored_tuned_blocks())
        mask = [float(i in stored) for i in range(len(self.tuned_mask))]
        self.tuned_mask.copy_(torch.tensor(mask))


class DomainParts:
    """What a multi-domain SpotTune model does with each domain's own parts (`self.domains`,
    whose entries describe themselves in their extra state: classes, stored fine-tuned
    blocks): prune the fine-tuned blocks it never uses, count what it stores, save and load
    its file."""

    def domain_parameter_count(self, domain: str, include_classifier: bool = True) -> int:
        """Parameters stored for one domain: everything its branch holds (its own stem and
        norm layers, the fine-tuned blocks kept, its policy, or a shared trunk's head only)
        and, optionally, its classifier."""
        branch = self.domains[domain]
        count = parameter_count(branch)
        return count if include_classifier else count - parameter_count(branch.classifier)

    def prune_unused_blocks(self, domain: str, keep=None) -> list[int]:
        """Drop the fine-tuned blocks the domain never uses; returns those kept.

        `keep`: block indices to keep; by default those a global policy chooses."""
        branch = self.domains[domain]
        if keep is None:
            if self.policy_kind != "global":
                raise ValueError("pass keep= for policies that decide per image")
            keep = branch.policy.logits.argmax(-1).nonzero().flatten().tolist()
        branch.keep_tuned_blocks(keep)
        return branch.stored_tuned_blocks()

    def domain_state_dict(self, domain: str) -> dict:
        return self.domains[domain].state_dict()

    def load_domain_state_dict(self, domain: str, state: dict) -> TunedBlocks:
        """Load (creating it if needed) a domain saved by `domain_state_dict`."""
        config = state["_extra_state"]
        if domain not in self.domains:
            self.add_domain(domain, config["num_classes"])
        branch = self.domains[domain]
        branch.keep_tuned_blocks(config["tuned_blocks"])
        branch.load_state_dict(state)
        return branch


class DomainBranch(TunedBlocks):
    """Everything one domain adds to the shared backbone; saved and loaded on its own.

    With a shared policy trunk and per-domain trunk BN (`trunk_norms`), the domain also
    owns its copy of the trunk's BN layers (see decathlon.models.shared_trunk)."""

    def __init__(self, backbone: ResNet, num_classes: int, policy_kind: str,
                 policy: nn.Module, copy_classifier: bool = False,
                 trunk_norms: nn.ModuleList | None = None, trunk_bn: str | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.policy_kind = policy_kind
        self.trunk_bn = trunk_bn
        self.trunk_norms = trunk_norms
        self.stem = copy.deepcopy(backbone.stem)
        self.frozen_norms = nn.ModuleList(
            nn.ModuleList(copy.deepcopy(bn) for bn in block.norms()) for block in backbone.blocks)
        # Keyed by block index so blocks a policy never uses can be dropped.
        self.tuned_blocks = nn.ModuleDict(
            {str(i): copy.deepcopy(block) for i, block in enumerate(backbone.blocks)})
        self.policy = policy
        self.head_bn = copy.deepcopy(backbone.head_bn)
        if copy_classifier:
            if backbone.classifier.out_features != num_classes:
                raise ValueError("copy_classifier needs the backbone's number of classes")
            self.classifier = copy.deepcopy(backbone.classifier)
        else:
            self.classifier = nn.Linear(backbone.num_features, num_classes)
        self.requires_grad_(True)
        self.register_buffer("tuned_mask", torch.ones(len(backbone.blocks)), persistent=False)

    def get_extra_state(self) -> dict:
        state = {"num_classes": self.num_classes, "policy": self.policy_kind,
                 "tuned_blocks": self.stored_tuned_blocks()}
        return state if self.trunk_bn is None else {**state, "trunk_bn": self.trunk_bn}

    def set_extra_state(self, state: dict) -> None:
        if state != self.get_extra_state():
            raise ValueError(f"domain state describes {state}, "
                             f"this branch is {self.get_extra_state()}")
