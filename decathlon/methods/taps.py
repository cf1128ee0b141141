"""TAPS, Task Adaptive Parameter Sharing (Wallingford et al., CVPR 2022): per layer a task
delta and a gate score; only the layers whose gate is on are stored.

Follows the public code (MattWallingford/TAPS, models/taps_net.py and train_sequential.py;
docs/reference.md, section 5.2): every convolution of the network is gated (here the
ResNet-26's 25: stem and blocks; its shortcuts have no weights), scores start at 0.15 and
a gate is on while its score is >= 0.1, the indicator is straight-through, the BN layers
and the classifier are the task's own and trained, the frozen weights never move. The loss
adds ``sparsity_weight * sum_i |s_i| / penalty_divisor`` (the code's fixed 52) in the
epochs after the first ``penalty_warmup_epochs + 1`` (the code's ``epoch > warmup_epochs``,
epochs counted from 0).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from decathlon.jobdir import TAPS_DOMAIN_FILE
from decathlon.methods.base import Method, new_backbone
from decathlon.models.taps import add_gates, gated_layers, sparsity_penalty


class Taps(Method):
    """A ResNet-26 whose 25 convolutions each get a task delta behind a learned gate."""
    name = "taps"

    def build(self, backbone_state):
        net = new_backbone(self.hparams, self.num_classes, backbone_state)
        add_gates(net, self.hparams["gate_threshold"], self.hparams["score_init"])
        # 1.0 once the penalty applies; a device tensor, so a captured step reads its value.
        self.register_buffer("penalty_on", torch.zeros(()), persistent=False)
        return net

    def begin_epoch(self, epoch: int) -> bool:
        self.penalty_on.fill_(float(epoch > self.hparams["penalty_warmup_epochs"]))
        return False   # the structure stays: no new optimizer

    def scores(self) -> torch.Tensor:
        return torch.cat([layer.score for _, layer in gated_layers(self.net)])

    def training_loss(self, x, y):
        logits = self.train_net(x)
        penalty = self.penalty_on * sparsity_penalty(self.scores(), self.hparams["sparsity_weight"],
                                                     self.hparams["penalty_divisor"])
        return F.cross_entropy(logits, y) + penalty, {"sparsity_penalty": penalty.detach()}

    def gates(self) -> dict:
        """{layer name: whether its gate is on}, input first."""
        return {name: bool(layer.score.item() >= layer.threshold) for name, layer in gated_layers(self.net)}

    def eval_stats(self, count: int) -> dict:
        """Which layers this domain tunes (1) or shares with the backbone (0), input first."""
        return {"layer_gates": [float(on) for on in self.gates().values()]}

    def stored_parameters(self) -> dict:
        """The deltas of the layers whose gate is on, the BN layers and the classifier (the
        frozen weights are the backbone's; a gate is one bit per layer, not counted)."""
        return {"total": sum(tensor.numel() for key, tensor in self._stored_state().items()
                             if not key.endswith(("running_mean", "running_var", "num_batches_tracked"))),
                "classifier": sum(p.numel() for p in self.classifier().parameters())}

    def _stored_state(self) -> dict:
        gates, state = self.gates(), {}
        for key, tensor in self.net.state_dict().items():
            layer, _, field = key.rpartition(".")
            if field in ("weight", "score") and layer in gates:
                continue   # the backbone's frozen weight; the gate is stored as `gates`
            if field == "delta" and not gates[layer]:
                continue   # a shared layer: its delta is never used
            state[key] = tensor.detach().cpu()
        return state

    def exports(self) -> dict:
        """What the domain ships beside the backbone: its gates, the deltas of its tuned
        layers, its BN layers and classifier."""
        return {TAPS_DOMAIN_FILE: {"format": 1, "gates": self.gates(), "state": self._stored_state()}}
