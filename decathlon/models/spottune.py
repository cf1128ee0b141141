"""Multi-domain SpotTune (Guo et al., CVPR 2019) on one shared, frozen backbone.

Each residual block l has a frozen pretrained copy and a per-domain fine-tuned copy;
a policy picks one per image: x_{l+1} = a_l F_tuned_l(x_l) + (1 - a_l) F_frozen_l(x_l).

What is shared and what is per domain. The backbone (a plain ``ResNet``) is held once
with ``requires_grad=False``; its block convolutions are the frozen path. As in the
authors' public code, the stem convolution and every BN layer stay trainable, BNs inside
the frozen blocks included, so each domain keeps its own copy of the stem, of the frozen
blocks' BN layers, of the head BN, plus its fine-tuned blocks, policy and classifier.
The frozen path runs the shared convolutions with the domain's BNs
(``BasicBlock.forward(x, norms=...)``), so the backbone itself is never modified.

Training computes both branches of every block (dense), by default as one fused block
(``fused=True``, see ``decathlon.models.fused``; ``fused=False`` keeps the arithmetic of
two separate blocks mixed by the decisions). In evaluation with hard decisions and no
gradient to the decisions, forward is ROUTED where ``routing_pays`` (every batch on a
CPU, batches of 128 or more on a GPU): each block runs only the branch each image takes
(see ``RoutingPlan``: one device synchronisation per forward, at most one gather per
block, the batch order restored on the logits). Routed and dense outputs agree up to
floating point error.

Files: ``shared_state_dict()`` once (backbone, and the policy trunk if shared), then one
``domain_state_dict(name)`` per domain, which describes itself (classes, policy kind,
stored fine-tuned blocks), so ``load_domain_state_dict`` can rebuild the domain.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from decathlon.models.fused import two_branch_block
from decathlon.models.policy import (DECISION_MODES, GUMBEL_TEMPERATURE, GlobalPolicy,
                                     PolicyHead, PolicyNet, decide, policy_trunk)
from decathlon.models.resnet import ResNet, pool_features
from decathlon.models.routing import (FOLDED_DEVICES, RoutingPlan, residual_functions,
                                      routing_pays)

POLICY_KINDS = ("per_domain", "shared_trunk", "global")
# Policy-free modes: all frozen, all fine-tuned, and the paper's random-policy ablation.
FIXED_MODES = ("frozen", "tuned", "random")
FORWARD_MODES = DECISION_MODES + FIXED_MODES


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class DomainBranch(nn.Module):
    """Everything one domain adds to the shared backbone; saved and loaded on its own."""

    def __init__(self, backbone: ResNet, num_classes: int, policy_kind: str,
                 policy: nn.Module, copy_classifier: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.policy_kind = policy_kind
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

    def get_extra_state(self) -> dict:
        return {"num_classes": self.num_classes, "policy": self.policy_kind,
                "tuned_blocks": self.stored_tuned_blocks()}

    def set_extra_state(self, state: dict) -> None:
        if state != self.get_extra_state():
            raise ValueError(f"domain state describes {state}, "
                             f"this branch is {self.get_extra_state()}")


class SpotTuneNet(nn.Module):
    """One frozen backbone, any number of SpotTune domains.

    ``policy``: 'per_domain' (a policy network per domain, the paper), 'shared_trunk'
    (one policy trunk, a head per domain) or 'global' (SpotTune-Global: a learned
    logit table per domain, no network). ``policy_width`` defaults to the backbone's.
    ``fused``: the two branches of a block as one fused block in training and dense
    forwards (``decathlon.models.fused``); False runs today's two blocks and mix.
    ``fold_routed``: routed forwards without gradient fold the BN layers into the
    convolutions (None: on the device types in ``routing.FOLDED_DEVICES``).
    Neither changes a state_dict key; both are plain attributes, settable later.
    """

    def __init__(self, backbone: ResNet, policy: str = "per_domain",
                 policy_width: float | None = None,
                 temperature: float = GUMBEL_TEMPERATURE, fused: bool = True,
                 fold_routed: bool | None = None):
        super().__init__()
        if policy not in POLICY_KINDS:
            raise ValueError(f"policy must be one of {POLICY_KINDS}, got {policy!r}")
        if backbone.adapter_kind is not None:
            raise ValueError("SpotTune duplicates the blocks of a plain ResNet, not adapters")
        self.backbone = backbone.requires_grad_(False)
        self.policy_kind = policy
        self.policy_width = backbone.width if policy_width is None else policy_width
        self.temperature = temperature
        self.fused = fused
        self.fold_routed = fold_routed
        self.policy_trunk = policy_trunk(self.policy_width) if policy == "shared_trunk" else None
        self.domains = nn.ModuleDict()

    @property
    def num_blocks(self) -> int:
        return len(self.backbone.blocks)

    def _new_policy(self) -> nn.Module:
        if self.policy_kind == "per_domain":
            return PolicyNet(self.num_blocks, self.policy_width)
        if self.policy_kind == "shared_trunk":
            return PolicyHead(self.policy_trunk.num_features, self.num_blocks)
        return GlobalPolicy(self.num_blocks)

    def add_domain(self, name: str, num_classes: int,
                   copy_classifier: bool = False) -> DomainBranch:
        """Add a domain initialised from the backbone (fine-tuned blocks = pretrained)."""
        if name in self.domains:
            raise ValueError(f"domain {name!r} already exists")
        branch = DomainBranch(self.backbone, num_classes, self.policy_kind,
                              self._new_policy(), copy_classifier)
        self.domains[name] = branch.to(next(self.backbone.parameters()).device)
        return branch

    def policy_logits(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """(N, num_blocks, 2) logits: (frozen, fine-tuned) per block."""
        policy = self.domains[domain].policy
        return policy(self.policy_trunk(x)) if self.policy_trunk is not None else policy(x)

    def decisions(self, x: torch.Tensor, domain: str, mode: str) -> torch.Tensor:
        """(N, num_blocks) float32 decisions in {0, 1} (1 = fine-tuned path)."""
        n = x.shape[0]
        if mode in DECISION_MODES:
            chosen = decide(self.policy_logits(x, domain), mode, self.temperature)
        elif mode == "frozen":
            chosen = x.new_zeros(n, self.num_blocks, dtype=torch.float32)
        elif mode == "tuned":
            chosen = x.new_ones(n, self.num_blocks, dtype=torch.float32)
        elif mode == "random":
            chosen = torch.bernoulli(x.new_full((n, self.num_blocks), 0.5, dtype=torch.float32))
        else:
            raise ValueError(f"mode must be one of {FORWARD_MODES}, got {mode!r}")
        # Blocks whose fine-tuned copy was pruned can only take the frozen path.
        return chosen * self.domains[domain].tuned_mask

    def forward(self, x: torch.Tensor, domain: str, mode: str | None = None,
                routed: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits, decisions). ``mode`` defaults to 'gumbel' in training and
        'argmax' in evaluation; ``routed`` defaults to True whenever it is valid
        (evaluation mode, decisions carrying no gradient) and ``routing_pays`` for the
        batch (by device type and batch size, see ``decathlon.models.routing``)."""
        branch = self.domains[domain]
        mode = mode or ("gumbel" if self.training else "argmax")
        decisions = self.decisions(x, domain, mode)
        routable = not self.training and not decisions.requires_grad
        if routed is None:
            routed = routable and routing_pays(x)
        elif routed and not routable:
            raise ValueError("routed forward needs eval mode and decisions without gradient")
        tuned_blocks = [branch.tuned_block(i) for i in range(self.num_blocks)]
        if routed:
            return self._routed(x, branch, decisions, tuned_blocks), decisions
        h = branch.stem(x)
        for index, (frozen_block, tuned) in enumerate(zip(self.backbone.blocks, tuned_blocks)):
            norms = branch.frozen_norms[index]
            if tuned is None:
                h = frozen_block(h, norms=norms)
            elif self.fused:
                h = two_branch_block(h, frozen_block, norms, tuned, decisions[:, index])
            else:
                tuned_out, frozen_out = tuned(h), frozen_block(h, norms=norms)
                a = decisions[:, index].view(-1, 1, 1, 1).to(tuned_out.dtype)
                h = a * tuned_out + (1 - a) * frozen_out
        return branch.classifier(pool_features(h, branch.head_bn)), decisions

    def _routed(self, x: torch.Tensor, branch: DomainBranch, decisions: torch.Tensor,
                tuned_blocks: list) -> torch.Tensor:
        """Logits of a routed forward (see ``RoutingPlan``), BN layers folded where
        ``fold_routed`` says (None: on ``FOLDED_DEVICES``) and gradients are off."""
        plan = RoutingPlan(decisions, [t is not None for t in tuned_blocks])
        fold = x.device.type in FOLDED_DEVICES if self.fold_routed is None else self.fold_routed
        folded = fold and not torch.is_grad_enabled()
        functions = residual_functions(plan, self.backbone.blocks, branch.frozen_norms,
                                       tuned_blocks, folded)
        h = branch.stem(x)
        for index, (block, (frozen, tuned)) in enumerate(zip(self.backbone.blocks, functions)):
            h = plan.run(index, h, tuned, frozen, block.shortcut)
        return plan.restore(branch.classifier(pool_features(h, branch.head_bn)))

    def prune_unused_blocks(self, domain: str, keep=None) -> list[int]:
        """Drop the fine-tuned blocks the domain never uses; returns those kept.

        ``keep``: block indices to keep; by default those a global policy chooses.
        """
        branch = self.domains[domain]
        if keep is None:
            if self.policy_kind != "global":
                raise ValueError("pass keep= for policies that decide per image")
            keep = branch.policy.logits.argmax(-1).nonzero().flatten().tolist()
        branch.keep_tuned_blocks(keep)
        return branch.stored_tuned_blocks()

    def parameter_groups(self, domain: str) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters of a domain: 'network' and 'policy' (own lr/decay)."""
        branch = self.domains[domain]
        policy = list(branch.policy.parameters())
        if self.policy_trunk is not None:
            policy += list(self.policy_trunk.parameters())
        policy_ids = {id(p) for p in policy}
        network = [p for p in branch.parameters() if id(p) not in policy_ids]
        return {"network": network, "policy": policy}

    def domain_state_dict(self, domain: str) -> dict:
        return self.domains[domain].state_dict()

    def load_domain_state_dict(self, domain: str, state: dict) -> DomainBranch:
        """Load (creating it if needed) a domain saved by ``domain_state_dict``."""
        config = state["_extra_state"]
        if domain not in self.domains:
            self.add_domain(domain, config["num_classes"])
        branch = self.domains[domain]
        branch.keep_tuned_blocks(config["tuned_blocks"])
        branch.load_state_dict(state)
        return branch

    def shared_state_dict(self) -> dict:
        """Backbone (and shared policy trunk): what every domain file builds on."""
        return {key: value for key, value in self.state_dict().items()
                if not key.startswith("domains.")}

    def load_shared_state_dict(self, state: dict) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [key for key in missing if not key.startswith("domains.")]
        if missing or unexpected:
            raise KeyError(f"shared state mismatch: missing {missing}, unexpected {unexpected}")

    def domain_parameter_count(self, domain: str, include_classifier: bool = True) -> int:
        """Parameters stored for one domain: stem, BNs, fine-tuned blocks kept, policy
        (head only for a shared trunk), head BN and, optionally, classifier."""
        branch = self.domains[domain]
        count = parameter_count(branch)
        return count if include_classifier else count - parameter_count(branch.classifier)

    def shared_parameter_count(self, include_classifier: bool = True) -> int:
        """Parameters stored once: the backbone and any shared policy trunk."""
        count = parameter_count(self.backbone)
        if not include_classifier:
            count -= parameter_count(self.backbone.classifier)
        if self.policy_trunk is not None:
            count += parameter_count(self.policy_trunk)
        return count

    def relative_size(self, include_classifiers: bool = False) -> float:
        """The Decathlon's "#par": everything stored, in multiples of the backbone
        ResNet-26 (classifiers excluded everywhere by default, as their size depends
        only on each domain's number of classes)."""
        reference = parameter_count(self.backbone)
        if not include_classifiers:
            reference -= parameter_count(self.backbone.classifier)
        total = self.shared_parameter_count(include_classifiers) + sum(
            self.domain_parameter_count(name, include_classifiers) for name in self.domains)
        return total / reference
