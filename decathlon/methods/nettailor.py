"""NetTailor (Morgado & Vasconcelos, CVPR 2019) as one job: distil with gates, prune, fine-tune.

The public code (pedro-morgado/nettailor, main_student.py; docs/reference.md, section 5.3)
runs three steps, which here are the two phases of one job:

1. epochs [0, prune_epoch): the student (decathlon.models.nettailor) learns its proxies,
   gates, head BN and classifier with cross-entropy + `complexity_weight` x the expected
   complexity + `distill_weight` x the distillation loss, at `lr`;
2. at `prune_epoch` the `prune_blocks` universal blocks of lowest gate and every proxy
   whose gate is at most `prune_threshold` are removed, a new optimizer is made, and the
   rest is fine-tuned without the complexity term at `finetune_lr`.

The schedule's `lr_milestones` are counted in the job's epochs; the second phase's lr
starts again from `finetune_lr` and steps at the milestones after `prune_epoch`.
The distillation loss (the code's `teacher_loss`) is the mean squared error between the
student's and the teacher's logits plus, per layer, between the layer's output on detached
inputs and the teacher's block output, all divided by the number of layers. The teacher
is the run's finetune job of the same domain and seed (`teacher_state`), frozen, in eval
mode, and kept out of this module's state dict.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from decathlon.methods.base import Method, new_backbone, pretrained_backbone
from decathlon.models.nettailor import NetTailorNet, keep_masks_in, prune_rule, teacher_forward


class NetTailor(Method):
    """Frozen universal blocks + task-specific proxies and gates, distilled from a teacher."""
    name = "nettailor"
    needs_teacher = True   # the engine passes `teacher_state`: the finetune job's weights

    def __init__(self, num_classes: int, hparams: dict, backbone_state: dict | None = None,
                 teacher_state: dict | None = None):
        if teacher_state is None:
            raise ValueError("method 'nettailor' distils from a finished finetune job of the same domain and seed: "
                             "pass its job folder with --teacher")
        super().__init__(num_classes, hparams, backbone_state)
        teacher = new_backbone(self.hparams, num_classes, None)
        teacher.load_state_dict(teacher_state)
        self.__dict__["teacher"] = teacher.requires_grad_(False).eval()   # not a submodule: not in checkpoints

    def build(self, backbone_state):
        return NetTailorNet(pretrained_backbone(self.hparams, backbone_state), self.num_classes,
                            self.hparams["max_skip"])

    @property
    def pruned(self) -> bool:
        """Whether a branch is closed (read from the layers' Python copies: no device sync
        inside a graph-captured step)."""
        return any(len(layer.kept) < len(layer.keep) for layer in self.net.layers)

    def param_groups(self) -> list:
        """The public code's groups: gates without weight decay, the rest with it."""
        hp, lr = self.hparams, self.hparams["finetune_lr"] if self.pruned else self.hparams["lr"]
        gates = [layer.gate_logits for layer in self.net.layers]
        rest = [p for name, p in self.net.named_parameters() if p.requires_grad and not name.endswith("gate_logits")]
        return [{"params": rest, "lr": lr, "weight_decay": hp["weight_decay"]},
                {"params": gates, "lr": lr, "weight_decay": 0.0}]

    def training_loss(self, x, y):
        logits, layer_outputs = self.train_net(x, local=True)
        with torch.no_grad():
            teacher_logits, teacher_ends = teacher_forward(self.teacher, x)
        distill = F.mse_loss(logits, teacher_logits)
        for student, teacher in zip(layer_outputs, teacher_ends, strict=True):
            distill = distill + F.mse_loss(student, teacher)
        distill = distill / len(layer_outputs)
        ce = F.cross_entropy(logits, y)
        loss = ce + self.hparams["distill_weight"] * distill
        logs = {"distill_loss": distill.detach()}
        if not self.pruned:   # the code's fine-tuning after pruning runs with --complexity-coeff 0
            complexity = self.net.expected_complexity()
            loss = loss + self.hparams["complexity_weight"] * complexity
            logs["complexity"] = complexity.detach()
        return loss, logs

    def begin_epoch(self, epoch: int) -> bool:
        """At `prune_epoch`: prune by the gates and start a new optimizer (True)."""
        if epoch != self.hparams["prune_epoch"] or self.pruned:
            return False
        self.net.prune(prune_rule(self.net, self.hparams["prune_blocks"], self.hparams["prune_threshold"]))
        self.optimizer = self.make_optimizer()
        self.rewrap()
        return True

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """A checkpoint saved after pruning restores the pruned structure (and a new optimizer
        over it) before its tensors are loaded."""
        masks = keep_masks_in(state_dict, "net.layers.")
        if masks is not None and any(not all(mask) for mask in masks) and not self.pruned:
            self.net.prune(masks)
            self.optimizer = self.make_optimizer()
            self.rewrap()
        return super().load_state_dict(state_dict, strict, assign)

    def _apply(self, fn, *args, **kwargs):
        """Device and dtype moves reach the teacher too (it is kept outside the module tree)."""
        if "teacher" in self.__dict__:
            self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def stored_parameters(self) -> dict:
        return {"total": self.net.domain_parameter_count(),
                "classifier": sum(p.numel() for p in self.net.classifier.parameters())}

    def eval_stats(self, count: int) -> dict:
        """The gates: each universal block's, and every proxy's in layer order (0 once pruned)."""
        gates = [layer.gates().detach().float().cpu().tolist() for layer in self.net.layers]
        return {"block_gates": [g[0] for g in gates], "proxy_gates": [v for g in gates for v in g[1:]]}
