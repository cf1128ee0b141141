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
(``decathlon.models.fused``; ``fused=False``: two blocks mixed by the decisions). In
evaluation with hard decisions, forward is ROUTED where ``routing_pays``: each block runs
only the branch each image takes (``RoutingPlan``: one device synchronisation per
forward). Routed and dense outputs agree up to floating point error.

Joint training: ``forward_group`` runs a shared policy trunk once on several domains'
batches (per-domain trunk BN unless ``trunk_bn="shared"``), then each domain on its own.

Files: ``shared_state_dict()`` once (backbone, and the policy trunk if shared), then one
``domain_state_dict(name)`` per domain, which describes itself (classes, policy kind,
stored fine-tuned blocks), so ``load_domain_state_dict`` can rebuild the domain. The
whole model as one file: ``checkpoint()`` / ``SpotTuneNet.load(path)``
(spottune_multidomain.pt: backbone, shared trunk, every domain, and what made it).
"""
from __future__ import annotations

import torch
from torch import nn

from decathlon.models import model_file
from decathlon.models.domain_branch import DomainBranch, DomainParts, parameter_count
from decathlon.models.compiled_tail import TAILS
from decathlon.models.fused import two_branch_block
from decathlon.models.policy import (DECISION_MODES, GUMBEL_TEMPERATURE, GlobalPolicy,
                                     PolicyHead, PolicyNet, block_decisions, policy_trunk)
from decathlon.models.resnet import ResNet, pool_features
from decathlon.models.routing import (FOLDED_DEVICES, RoutingPlan, residual_functions,
                                      routing_pays)
from decathlon.models.shared_trunk import TRUNK_BN_KINDS, copy_trunk_norms, group_features, trunk_features

POLICY_KINDS = ("per_domain", "shared_trunk", "global")


class SpotTuneNet(DomainParts, nn.Module):
    """One frozen backbone, any number of SpotTune domains.

    ``policy``: 'per_domain' (a policy network per domain, the paper), 'shared_trunk'
    (one policy trunk, a head per domain) or 'global' (SpotTune-Global: a learned
    logit table per domain, no network). ``policy_width`` defaults to the backbone's.
    ``fused``: the two branches of a block as one fused block in training and dense
    forwards (``decathlon.models.fused``); False runs today's two blocks and mix.
    ``fold_routed``: routed forwards without gradient fold the BN layers into the
    convolutions (None: on the device types in ``routing.FOLDED_DEVICES``).
    Neither changes a state_dict key; both are plain attributes, settable later.
    ``tail``: the fused block's tail, 'eager' or 'compiled' (torch.compile, training
    only; ``decathlon.models.compiled_tail``), a plain attribute too.
    ``trunk_bn`` (shared trunk only): 'per_domain' BN layers in the trunk, or 'shared'.
    """

    def __init__(self, backbone: ResNet, policy: str = "per_domain",
                 policy_width: float | None = None,
                 temperature: float = GUMBEL_TEMPERATURE, fused: bool = True,
                 fold_routed: bool | None = None, trunk_bn: str = "per_domain", tail: str = "eager"):
        super().__init__()
        if policy not in POLICY_KINDS:
            raise ValueError(f"policy must be one of {POLICY_KINDS}, got {policy!r}")
        if trunk_bn not in TRUNK_BN_KINDS:
            raise ValueError(f"trunk_bn must be one of {TRUNK_BN_KINDS}, got {trunk_bn!r}")
        if tail not in TAILS:
            raise ValueError(f"tail must be one of {TAILS}, got {tail!r}")
        if backbone.adapter_kind is not None:
            raise ValueError("SpotTune duplicates the blocks of a plain ResNet, not adapters")
        self.backbone = backbone.requires_grad_(False)
        self.policy_kind = policy
        self.policy_width = backbone.width if policy_width is None else policy_width
        self.temperature = temperature
        self.fused = fused
        self.fold_routed = fold_routed
        self.tail = tail
        self.policy_trunk = policy_trunk(self.policy_width) if policy == "shared_trunk" else None
        self.trunk_bn = trunk_bn if self.policy_trunk is not None else None
        self.domains = nn.ModuleDict()
        self.info = {}   # what made the model (a model file's `info`, e.g. its augmentation)

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
        own_norms = copy_trunk_norms(self.policy_trunk) if self.trunk_bn == "per_domain" else None
        branch = DomainBranch(self.backbone, num_classes, self.policy_kind, self._new_policy(), copy_classifier,
                              own_norms, self.trunk_bn)
        self.domains[name] = branch.to(next(self.backbone.parameters()).device)
        return branch

    def policy_logits(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """(N, num_blocks, 2) logits: (frozen, fine-tuned) per block. The policy network
        reads the image channels_last: its few-channel convolutions run several times
        faster so on a CPU (oneDNN), as on a GPU; the values are the same up to rounding."""
        x = x.contiguous(memory_format=torch.channels_last)
        branch = self.domains[domain]
        if self.policy_trunk is None:
            return branch.policy(x)
        return branch.policy(trunk_features(self.policy_trunk, x, branch.trunk_norms))

    def group_policy_logits(self, xs: list, domains: list) -> list:
        """policy_logits of several domains' batches; a shared trunk runs once on all."""
        if self.policy_trunk is None:
            return [self.policy_logits(x, domain) for x, domain in zip(xs, domains)]
        branches = [self.domains[domain] for domain in domains]
        norms = [branch.trunk_norms for branch in branches] if self.trunk_bn == "per_domain" else None
        xs = [x.contiguous(memory_format=torch.channels_last) for x in xs]
        features = group_features(self.policy_trunk, xs, norms)
        return [branch.policy(f) for branch, f in zip(branches, features)]

    def forward_group(self, xs: list, domains: list, mode: str | None = None) -> list:
        """[(logits, decisions)] of several domains' batches (joint training): the policy
        trunk once on all of them, then each domain's forward on its own batch."""
        mode = mode or ("gumbel" if self.training else "argmax")
        logits = self.group_policy_logits(xs, domains) if mode in DECISION_MODES else [None] * len(xs)
        return [self(x, domain, mode, routed=False, policy_logits=policy)
                for x, domain, policy in zip(xs, domains, logits)]

    def decisions(self, x: torch.Tensor, domain: str, mode: str,
                  policy_logits: torch.Tensor | None = None) -> torch.Tensor:
        """(N, num_blocks) float32 decisions in {0, 1} (1 = fine-tuned path); the policy's
        logits are computed here unless given."""
        chosen = block_decisions(x, self.num_blocks, mode, lambda: self.policy_logits(x, domain)
                                 if policy_logits is None else policy_logits, self.temperature)
        # Blocks whose fine-tuned copy was pruned can only take the frozen path.
        return chosen * self.domains[domain].tuned_mask

    def forward(self, x: torch.Tensor, domain: str, mode: str | None = None,
                routed: bool | None = None, policy_logits: torch.Tensor | None = None) -> tuple:
        """Returns (logits, decisions). ``mode`` defaults to 'gumbel' in training and
        'argmax' in evaluation; ``routed`` defaults to True whenever it is valid
        (evaluation mode, decisions carrying no gradient) and ``routing_pays`` for the
        batch (by device type and batch size, see ``decathlon.models.routing``)."""
        branch = self.domains[domain]
        mode = mode or ("gumbel" if self.training else "argmax")
        decisions = self.decisions(x, domain, mode, policy_logits)
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
                h = two_branch_block(h, frozen_block, norms, tuned, decisions[:, index], self.tail)
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

    def parameter_groups(self, domain: str) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters of a domain: 'network' and 'policy' (own lr/decay)."""
        branch = self.domains[domain]
        policy = list(branch.policy.parameters())
        if self.policy_trunk is not None:   # the trunk, and the domain's own trunk BNs if any
            policy += list(self.policy_trunk.parameters())
            policy += list(branch.trunk_norms.parameters()) if branch.trunk_norms is not None else []
        policy_ids = {id(p) for p in policy}
        network = [p for p in branch.parameters() if id(p) not in policy_ids]
        return {"network": network, "policy": policy}

    def checkpoint(self, **info) -> dict:
        """The whole model as one file's content (see ``decathlon.models.model_file``)."""
        return model_file.checkpoint(self, **info)

    @classmethod
    def from_checkpoint(cls, content: dict, where: str = "model file") -> "SpotTuneNet":
        return model_file.from_checkpoint(cls, content, where)

    @classmethod
    def load(cls, path) -> "SpotTuneNet":
        """A model file in one call, read with torch.load(weights_only=True)."""
        return model_file.load(cls, path)

    def shared_state_dict(self) -> dict:
        """Backbone (and shared policy trunk): what every domain file builds on."""
        return {key: value for key, value in self.state_dict().items()
                if not key.startswith("domains.")}

    def load_shared_state_dict(self, state: dict) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [key for key in missing if not key.startswith("domains.")]
        if missing or unexpected:
            raise KeyError(f"shared state mismatch: missing {missing}, unexpected {unexpected}")

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
