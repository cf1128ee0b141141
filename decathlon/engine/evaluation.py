"""Top-1 accuracy of a method on one loader, over all ranks, under one test-time policy.

Under DDP an evaluation loader pads each rank's part with up to world_size - 1 repeated
images; predictions are gathered and deduplicated by image_id, so every image counts once,
and a method's statistics (SpotTune's policy usage) leave the repeats out.

A random policy (SpotTune's sampled decisions, the random-policy ablation) is evaluated
with the torch RNG seeded per draw inside `torch.random.fork_rng`: the numbers are
reproducible and the training RNG stream (hence resume) is untouched. With several draws
the accuracy is their mean (each draw's is kept); the predictions are those of the first
draw, one draw being what the public code submitted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from decathlon.engine import distributed

RANDOM_POLICIES = ("sample", "random")


@dataclass
class EvalResult:
    accuracy: float | None        # None where the split has no labels
    count: int
    stats: dict                   # method-specific (e.g. SpotTune's policy usage), first draw
    image_ids: np.ndarray
    predictions: np.ndarray
    draw_accuracies: list = field(default_factory=list)   # one per draw when the policy is random

    def entry(self) -> dict:
        """The final.json form (without the predictions file)."""
        entry = {"accuracy": self.accuracy, "num_images": self.count, "stats": self.stats}
        if len(self.draw_accuracies) > 1:
            entry["draw_accuracies"] = self.draw_accuracies
        return entry


def evaluate(method, loader, ctx, policy: str | None = None, draws: int = 1, seed: int = 0) -> EvalResult:
    """Accuracy of `method` on `loader` under test-time `policy` (None: the method has none)."""
    method.use_eval_policy(policy)
    if policy not in RANDOM_POLICIES:
        return _one_pass(method, loader, ctx)
    results = []
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    for draw in range(max(1, draws)):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + draw)
            results.append(_one_pass(method, loader, ctx))
    first, accuracies = results[0], [r.accuracy for r in results]
    if first.accuracy is not None:
        first.accuracy = float(np.mean(accuracies))
        first.draw_accuracies = accuracies
    return first


@torch.no_grad()
def _one_pass(method, loader, ctx) -> EvalResult:
    method.eval()
    ids, preds, labels, stats = [], [], [], []
    not_padding = loader.real_images_per_rank   # this rank's images before its padding repeats
    for images, batch_labels, image_ids in loader:
        with method.autocast():
            logits = method.predict(images)
        ids.append(np.asarray(image_ids))
        preds.append(logits.argmax(1).cpu().numpy())
        labels.append(batch_labels.cpu().numpy())
        real = min(len(batch_labels), not_padding)
        not_padding -= real
        if real:
            stats.append((real, method.eval_stats(real)))
    parts = distributed.all_gather_objects([np.concatenate(a) for a in (ids, preds, labels)], ctx)
    image_ids, first = np.unique(np.concatenate([p[0] for p in parts]), return_index=True)
    predictions = np.concatenate([p[1] for p in parts])[first]
    known_labels = np.concatenate([p[2] for p in parts])[first]
    known = known_labels >= 0
    accuracy = float((predictions[known] == known_labels[known]).mean()) if known.any() else None
    return EvalResult(accuracy, len(image_ids), _weighted_mean(stats, ctx), image_ids, predictions)


def _weighted_mean(stats: list, ctx) -> dict:
    """Image-weighted mean, over batches and ranks, of each numeric stat (lists element-wise)."""
    if not stats:
        return {}
    merged = {}
    for key, example in stats[0][1].items():
        total = sum(n * np.asarray(s[key], np.float64) for n, s in stats)
        summed = distributed.all_sum(np.atleast_1d(total).tolist() + [sum(n for n, _ in stats)], ctx)
        value = np.asarray(summed[:-1]) / max(summed[-1], 1)
        merged[key] = value.tolist() if np.ndim(example) else float(value[0])
    return merged
