"""TAPS's hyperparameters: its method block and the `taps_paper` preset (docs/reference.md,
section 5.2; the public code's train_sequential.py and options.py defaults).

The code steps SGD once per 8 batches of 32 with the 8 batches' gradients summed (its
`if i % 8 == 0`), i.e. one step on 256 images at 8 x its lr 0.01 on their mean loss; the
preset takes those steps directly (batch 256, lr 0.08), so BN normalises over 256 images
where the code's over 32. It runs `epochs + 1` = 31 epochs under CosineAnnealingLR(T_max=30):
the last one at lr 0, where only the BN statistics move.
"""
from __future__ import annotations

# The code's defaults: lam 1, threshold 0.1, scores initialised at 0.15, the penalty from
# the epoch after warmup_epochs 2, divided by its fixed 52.
TAPS_METHOD = dict(sparsity_weight=1.0, gate_threshold=0.1, score_init=0.15, penalty_warmup_epochs=2,
                   penalty_divisor=52.0)

# cpu_demo's 3 epochs of ~4 steps: the penalty from the second epoch (the code's warm-up would
# leave it off) and 8 times the code's weight, so that it can close gates in ~8 steps (on the
# synthetic data this leaves dtd 7 of 25 layers tuned, gtsrb 2; at weight 1 all 25 stay on).
TAPS_IN_PRESET = {"cpu_demo": dict(penalty_warmup_epochs=0, sparsity_weight=8.0)}


def taps_paper_common(paper_options: dict) -> dict:
    """The training recipe of train_sequential.py: SGD momentum 0.9, no weight decay, cosine
    annealing, train only (it scores the test folder each epoch; we score val)."""
    return dict(paper_options, width=1.0, batch_size=256, epochs=31, lr=0.08, momentum=0.9, lr_milestones=[],
                lr_gamma=0.1, weight_decay=0.0, augmentation="adapters", eval_batch_size=512,
                lr_schedule="cosine", cosine_epochs=30)
