"""The per-epoch learning-rate schedules a job can follow (hyperparameter `lr_schedule`)."""
from __future__ import annotations

import torch

LR_SCHEDULES = ("step", "cosine")


def lr_schedule(optimizer, hp: dict, since: int = 0):
    """The per-epoch schedule from job epoch `since` (the optimizer's first): x`lr_gamma` at
    each of `lr_milestones` (job epochs); or, with `lr_schedule` 'cosine' (the TAPS code's),
    torch's cosine annealing to 0 at `cosine_epochs` (0: the job's epochs)."""
    if hp.get("lr_schedule", "step") == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, (hp["cosine_epochs"] or hp["epochs"]) - since)
    milestones = [m - since for m in hp["lr_milestones"] if m > since] if since else hp["lr_milestones"]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, hp["lr_gamma"])
