"""SpotTune and its variants as methods: one domain on the shared frozen backbone.

On the benchmark's ResNet-26 they use `SpotTuneNet`; on a timm backbone (hyperparameter
`arch` 'timm:<name>') `BlockSpotTuneNet`, SpotTune over the body's residual blocks
(docs/spottune_any_backbone.md). Both have the same per-domain interface."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from decathlon.methods.base import Method, decay_groups, new_backbone, pretrained_backbone
from decathlon.models import BlockSpotTuneNet, SpotTuneNet, budget_loss, is_timm
from decathlon.jobdir import DOMAIN_FILE


class _OneDomain(nn.Module):
    """forward(x) -> logits for one domain of a SpotTuneNet (what DDP wraps).

    The decisions of the last forward are kept for the budget loss and policy usage; a
    training step takes them (`take_decisions`) and leaves only a detached copy, so no
    autograd graph outlives its step (a CUDA-graph replay must not find one)."""

    def __init__(self, spottune: SpotTuneNet | BlockSpotTuneNet, domain: str, train_mode: str, eval_mode: str):
        super().__init__()
        self.spottune, self.domain = spottune, domain
        self.train_mode, self.eval_mode = train_mode, eval_mode
        self.last_decisions = None

    @property
    def classifier(self) -> nn.Module:
        return self.spottune.domains[self.domain].classifier

    def forward(self, x):
        mode = self.train_mode if self.training else self.eval_mode
        logits, self.last_decisions = self.spottune(x, self.domain, mode)
        return logits

    def take_decisions(self) -> torch.Tensor:
        """The last forward's decisions (with their gradient); a detached copy stays."""
        decisions = self.last_decisions
        self.last_decisions = decisions.detach()
        return decisions


def timm_spottune(hparams: dict, backbone_state: dict) -> BlockSpotTuneNet:
    """SpotTune over the residual blocks of the job's timm backbone, pretrained weights
    loaded; its policy network is the paper's [1, 1, 1] ResNet at the hyperparameter `width`."""
    if hparams["tail"] != "eager":
        raise ValueError(f"hyperparameter 'tail' is {hparams['tail']!r}: the compiled tail exists for the "
                         f"ResNet-26 SpotTune only, not on backbone arch {hparams['arch']!r}")
    return BlockSpotTuneNet(new_backbone(hparams, 1, backbone_state), policy=hparams["policy"],
                            policy_width=hparams["width"], temperature=hparams["temperature"], arch=hparams["arch"])


class SpotTune(Method):
    """Guo et al. 2019: per image and block, a policy picks the frozen or fine-tuned copy.

    A finished job is evaluated with both test-time policies: `argmax` (deterministic) and
    `sample` (the public code's Gumbel draws, i.e. samples of softmax(logits)); the
    hyperparameter `eval_policy` says which one the job reports first (and monitors)."""
    name = "spottune"
    backbones = "any"
    train_mode = "gumbel"
    domain = "target"

    def build(self, backbone_state):
        if is_timm(self.hparams.get("arch", "resnet26")):
            spottune = timm_spottune(self.hparams, backbone_state)
        else:
            backbone = pretrained_backbone(self.hparams, backbone_state)
            spottune = SpotTuneNet(backbone, policy=self.hparams["policy"], temperature=self.hparams["temperature"],
                                   tail=self.hparams["tail"])
        spottune.add_domain(self.domain, self.num_classes)
        return _OneDomain(spottune, self.domain, self.train_mode, self.hparams["eval_policy"])

    def param_groups(self) -> list:
        groups = self.net.spottune.parameter_groups(self.domain)
        network = decay_groups(groups["network"], self.hparams["lr"], self.hparams)
        return network + [{"params": groups["policy"], "lr": self.hparams["policy_lr"],
                           "weight_decay": self.hparams["policy_weight_decay"]}]

    def training_loss(self, x, y):
        logits = self.train_net(x)
        self.net.take_decisions()
        return F.cross_entropy(logits, y), {}

    def eval_policies(self) -> tuple:
        return tuple(dict.fromkeys((self.hparams["eval_policy"], "argmax", "sample")))

    def use_eval_policy(self, policy: str | None) -> None:
        self.net.eval_mode = policy

    def eval_stats(self, count: int) -> dict:
        """Fraction of images that took the fine-tuned path of each block."""
        return {"policy_usage": self.net.last_decisions[:count].float().mean(0).tolist()}

    def stored_parameters(self) -> dict:
        return {"total": self.net.spottune.domain_parameter_count(self.domain),
                "classifier": sum(p.numel() for p in self.net.classifier.parameters())}

    def exports(self) -> dict:
        """The domain's own file; the backbone is shipped once (see SpotTuneNet)."""
        return {DOMAIN_FILE: self.net.spottune.domain_state_dict(self.domain)}


class SpotTuneGlobal(SpotTune):
    """SpotTune-Global: one learned policy per domain, pushed toward k fine-tuned blocks.

    Blocks the final policy never chooses are not stored (nor counted in #par)."""
    name = "spottune_global"

    def training_loss(self, x, y):
        logits = self.train_net(x)
        budget = budget_loss(self.net.take_decisions(), self.hparams["budget_blocks"],
                             self.hparams["budget_weight"], self.hparams["entropy_weight"])
        ce = F.cross_entropy(logits, y)
        return ce + budget, {"budget_loss": budget.detach()}

    def _pruned(self) -> SpotTuneNet | BlockSpotTuneNet:
        pruned = copy.deepcopy(self.net.spottune)
        pruned.prune_unused_blocks(self.domain)
        return pruned

    def stored_parameters(self) -> dict:
        return {"total": self._pruned().domain_parameter_count(self.domain),
                "classifier": sum(p.numel() for p in self.net.classifier.parameters())}

    def exports(self) -> dict:
        return {DOMAIN_FILE: self._pruned().domain_state_dict(self.domain)}


class RandomPolicy(SpotTune):
    """The paper's ablation: each block takes the fine-tuned path with probability 0.5."""
    name = "random_policy"
    train_mode = "random"

    def eval_policies(self) -> tuple:
        return ("random",)

    def param_groups(self) -> list:
        network = self.net.spottune.parameter_groups(self.domain)["network"]
        return decay_groups(network, self.hparams["lr"], self.hparams)

    def stored_parameters(self) -> dict:
        counts = super().stored_parameters()
        unused = sum(p.numel() for p in self.net.spottune.domains[self.domain].policy.parameters())
        return {**counts, "total": counts["total"] - unused}
