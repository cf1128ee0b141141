"""Piggyback's hyperparameters and its `piggyback_paper` preset (docs/reference.md, section 5.1).

The public code (arunmallya/piggyback, src/scripts/run_piggyback_training.sh and src/main.py)
trains masks and classifier with Adam at 1e-4 each, x0.1 every 15 epochs, 30 epochs, batch
32, no weight decay; mask scores start at 1e-2, the threshold is 5e-3. Its baseline script
(run_baselines.sh) fine-tunes whole networks with SGD, momentum 0.9, lr 1e-3, the same
schedule: the `piggyback_paper` preset's common block, so that its finetune rows (the
baseline of S) are the code's "individual network" baseline.
"""
from __future__ import annotations

# What every preset gives a piggyback job (the method's block of the registry).
PIGGYBACK_METHOD = dict(lr=1e-4, weight_decay=0.0, mask_lr=1e-4, mask_scale=1e-2, mask_threshold=5e-3,
                        train_bn=True)

# cpu_demo trains 3 epochs of 3 steps: Adam at the paper's 1e-4 moves a score 1e-4 a step, and
# no mask entry (1e-2 start, 5e-3 threshold) could flip; these rates let a few flip and the new
# classifier learn. Our choice for the demo, not the paper's.
PIGGYBACK_BY_PRESET = {"cpu_demo": dict(lr=1e-2, mask_lr=2e-3)}

# The preset's common block, without the options every paper preset shares.
PIGGYBACK_PAPER = dict(width=1.0, batch_size=32, epochs=30, lr=1e-3, momentum=0.9, lr_milestones=[15],
                       lr_gamma=0.1, weight_decay=0.0, augmentation="adapters", eval_batch_size=512)
