"""NetTailor's hyperparameters and its `nettailor_paper` preset (docs/reference.md, section 5.3).

The public code (pedro-morgado/nettailor) ships no Decathlon training script (its README
names main_student_decathlon.py, which the repository does not have); what it runs are the
demo scripts with main_teacher.py / main_student.py. The preset follows those, with the
values that demo_flowers.py and demo_voc12.py share:
- teacher (finetune): batch 64, lr 0.01 x0.1 every 20 epochs, 50 epochs, weight decay 5e-4;
- student: batch 32, 50 epochs at lr 0.1 x0.1 every 20, then pruned and 60 epochs at lr 0.01
  x0.1 every 20 (milestones 20, 40, 70, 90 of one 110-epoch job), weight decay 5e-4
  (gates 0), momentum 0.9, max_skip 3, complexity weight 0.3, distillation weight 10.
The pruning amounts differ per demo (universal blocks removed: 11, 7, 3 of ResNet-34's 16;
proxy thresholds 0.075, 0.04, 0.1); for ResNet-26's 12 blocks `prune_blocks=5` and
main_student.py's default `prune_threshold=0.05` are our choice, recorded as such.
"""
from __future__ import annotations

# Method block (every preset); `cpu_demo` scale: 3 epochs, pruned before the last one.
NETTAILOR = dict(max_skip=3, distill_weight=10.0, complexity_weight=0.3, prune_epoch=2, prune_blocks=5,
                 prune_threshold=0.05, finetune_lr=0.005)


def nettailor_paper(paper_options: dict, paper_pretrain: dict) -> dict:
    """The preset's tables, keyed as the registry's (common block, per-method values...)."""
    return {
        "protocol": "train",
        "common": dict(paper_options, width=1.0, batch_size=32, epochs=110, lr=0.1, momentum=0.9,
                       lr_milestones=[20, 40, 70, 90], lr_gamma=0.1, weight_decay=5e-4, augmentation="adapters",
                       eval_batch_size=512),
        "methods": {"finetune": dict(batch_size=64, epochs=50, lr=0.01, lr_milestones=[20, 40]),
                    "nettailor": dict(prune_epoch=50, finetune_lr=0.01)},
        "eval_policy": "argmax",
        "pretrain": paper_pretrain,
    }
