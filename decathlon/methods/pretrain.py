"""The two pretraining jobs' methods: the backbone trained from scratch on imagenet12, and a
given backbone evaluated as it is (decathlon.engine.pretraining runs them)."""
from __future__ import annotations

from decathlon.checkpoints import arch_record, backbone_checkpoint
from decathlon.data import SOURCE_DOMAIN
from decathlon.jobdir import BACKBONE_FILE
from decathlon.methods.base import Method
from decathlon.methods.plain import Scratch
from decathlon.models import network_of


class Pretraining(Scratch):
    """Scratch training on the source domain whose export is the shared backbone, of any
    arch (its file records the arch, decathlon.checkpoints.arch_record)."""
    name = "pretrain"

    def exports(self) -> dict:
        return {BACKBONE_FILE: backbone_checkpoint(self.net, arch_record(self.hparams), domain=SOURCE_DOMAIN)}


class BackboneEvaluation(Method):
    """A given backbone as it is, classifier included: a job of no epochs that fills the
    ImNet column (the published rows' ImNet is the backbone's own accuracy too). Any arch
    whose backbone file holds its imagenet12 classifier (ours, or the public .t7)."""
    name = "pretrain"
    backbones = "any"

    def build(self, backbone_state):
        net = network_of(self.hparams, self.num_classes)
        found = backbone_state["classifier.weight"].shape[0]
        if found != self.num_classes:
            raise ValueError(f"the backbone's classifier has {found} classes, the prepared {SOURCE_DOMAIN} has "
                             f"{self.num_classes}: it cannot be evaluated on this data")
        net.load_state_dict(backbone_state)
        return net
