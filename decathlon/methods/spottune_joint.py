"""SpotTune trained jointly over all the run's domains: one model, one shared policy trunk.

No public code trains SpotTune this way: each of its models learns one domain. Here one
SpotTuneNet holds every target domain on the shared frozen backbone. Shared and trained:
the policy trunk's convolutions (its BN layers per domain by default, see
decathlon.models.shared_trunk). Per domain, as in per-domain SpotTune: the policy head,
the fine-tuned blocks, the stem, every BN, the head BN and the classifier. Each training
step is a batch of one or more domains (decathlon.engine.interleave); its loss is the sum
of their cross-entropies, so each domain's parts get exactly the gradient of their own
batch, and the trunk the sum over the step's domains. Per-domain hyperparameters (the
paper preset's weight decay) apply to each domain's parameters; the trunk and the heads
take the policy's lr and weight decay.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from decathlon.methods.base import Method, decay_groups, pretrained_backbone
from decathlon.models import SpotTuneNet
from decathlon.jobdir import MODEL_FILE


class _JointNet(nn.Module):
    """forward(images, domains) -> [logits per batch] (what DDP wraps); the decisions of
    the last forward are kept per domain."""

    def __init__(self, spottune: SpotTuneNet, eval_mode: str):
        super().__init__()
        self.spottune, self.eval_mode = spottune, eval_mode
        self.last_decisions = {}

    def forward(self, images: list, domains: tuple) -> list:
        outputs = self.spottune.forward_group(images, domains, "gumbel" if self.training else self.eval_mode)
        self.last_decisions = {domain: decisions.detach() for domain, (_, decisions) in zip(domains, outputs)}
        return [logits for logits, _ in outputs]


class _DomainView:
    """One domain of the joint model, as the evaluator uses a method."""

    def __init__(self, method: "SpotTuneJoint", domain: str):
        self.method, self.domain = method, domain

    def __getattr__(self, name):   # eval, autocast, use_eval_policy, ...: the method's
        return getattr(self.method, name)

    def predict(self, x):
        net = self.method.net
        logits, decisions = net.spottune(x, self.domain, net.eval_mode)
        net.last_decisions = {self.domain: decisions}
        return logits

    def eval_stats(self, count: int) -> dict:
        return {"policy_usage": self.method.net.last_decisions[self.domain][:count].float().mean(0).tolist()}


class SpotTuneJoint(Method):
    """SpotTune over several domains at once (`num_classes`: {domain: classes})."""
    name = "spottune_joint"
    multi_domain = True

    def build(self, backbone_state):
        backbone = pretrained_backbone(self.hparams, backbone_state)
        spottune = SpotTuneNet(backbone, policy=self.hparams["policy"], temperature=self.hparams["temperature"],
                               trunk_bn=self.hparams["trunk_bn"], tail=self.hparams["tail"])
        for domain, classes in self.num_classes.items():
            spottune.add_domain(domain, classes)
        return _JointNet(spottune, self.hparams["eval_policy"])

    def _domain_hparams(self, domain: str) -> dict:
        return {**self.hparams, **self.hparams.get("per_domain", {}).get(domain, {})}

    def param_groups(self) -> list:
        spottune, groups, policy = self.net.spottune, [], {}
        for domain in spottune.domains:
            parts = spottune.parameter_groups(domain)
            hp = self._domain_hparams(domain)
            groups += decay_groups(parts["network"], hp["lr"], hp)
            policy.update((id(p), p) for p in parts["policy"])   # the shared trunk once
        return groups + [{"params": list(policy.values()), "lr": self.hparams["policy_lr"],
                          "weight_decay": self.hparams["policy_weight_decay"]}]

    def training_loss(self, *batch):
        domains, images, labels = batch[0::3], list(batch[1::3]), batch[2::3]
        logits = self.train_net(images, domains)
        return sum(F.cross_entropy(out, y) for out, y in zip(logits, labels)), {}

    def domain_view(self, domain: str) -> _DomainView:
        return _DomainView(self, domain)

    def eval_policies(self) -> tuple:
        return tuple(dict.fromkeys((self.hparams["eval_policy"], "argmax", "sample")))

    def use_eval_policy(self, policy: str | None) -> None:
        self.net.eval_mode = policy

    def stored_parameters(self) -> dict:
        spottune = self.net.spottune
        return {"shared": sum(p.numel() for p in spottune.policy_trunk.parameters()) if spottune.policy_trunk
                else 0,
                "domains": {d: {"total": spottune.domain_parameter_count(d),
                                "classifier": sum(p.numel() for p in spottune.domains[d].classifier.parameters())}
                            for d in spottune.domains}}

    def exports(self) -> dict:
        """The whole model in one file (backbone, shared trunk, every domain)."""
        return {MODEL_FILE: self.net.spottune.checkpoint(method=self.name, augmentation=self.hparams["augmentation"],
                                                         crop_rounding=self.hparams["crop_rounding"])}
