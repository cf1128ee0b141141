"""What a job cost: inference FLOPs per image, training throughput, device-hours, peak memory.

final.json's "cost" (written by decathlon.engine.results.finish):

    flops                {domain: {"flops_per_image", "images_counted", "split", "eval_policy"}}
    train_images_per_s   training images / training seconds, over every recorded epoch
    train_seconds        the recorded epochs' training seconds (a resumed job: all its epochs)
    eval_seconds         the recorded epochs' evaluation seconds + the final evaluations'
    device_hours         (train_seconds + eval_seconds) x world_size / 3600
    device_kind          the device's name ("cpu", or the CUDA device's name)
    world_size           processes that trained the job
    peak_memory_mib      peak memory in MiB (2**20 bytes), see peak_memory_kind
    peak_memory_kind     "cuda_max_allocated": torch.cuda.max_memory_allocated since the job
                         started; "process_max_rss": the process's peak resident set (an upper
                         bound when the process ran other jobs before)

FLOPs are torch's own count (torch.utils.flop_counter.FlopCounterMode: convolutions and
matrix products; a multiply-add is 2 FLOPs; normalisation, pooling and element-wise
operations are not counted) of the method's evaluation forward, in eval mode without
gradient, on the first `FLOP_IMAGES` images (at most) of the domain's val split, or its
first scored split under trainval, at the job's evaluation input size, divided by the
number of images. A method with per-image decisions (the SpotTune variants) is counted
under the decisions its reported test-time policy takes on those images and with routed
execution (each image runs only the branch of each block it takes, policy network
included): the expected FLOPs under the measured policy usage, whichever forward the
evaluation itself ran. A pruned method (NetTailor) is counted as it predicts: what survives.
"""
from __future__ import annotations

import contextlib
import resource
import sys
from functools import partial

import torch
from torch.utils.flop_counter import FlopCounterMode

from decathlon.models import SpotTuneNet

FLOP_IMAGES = 512   # enough for a policy's usage, cheap next to one evaluation
# A network without per-image decisions costs the same on every image of a split (its
# batches share one input size): a few images give its exact count.
STATIC_FLOP_IMAGES = 8
MIB = 2 ** 20


def reset_peak_memory(device: torch.device) -> None:
    """Start the job's peak-memory count (CUDA; a process's peak resident set cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_memory_mib": torch.cuda.max_memory_allocated(device) / MIB,
                "peak_memory_kind": "cuda_max_allocated"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux, bytes on macOS
    return {"peak_memory_mib": rss / (MIB if sys.platform == "darwin" else 1024),
            "peak_memory_kind": "process_max_rss"}


def time_cost(records: list, final_eval_seconds: float, world_size: int, device_kind: str) -> dict:
    """Throughput and device-hours from the job's epoch records (every epoch, resumed or not)."""
    train = sum(r.get("seconds") or 0.0 for r in records)
    images = sum((r.get("train_images_per_s") or 0.0) * (r.get("seconds") or 0.0) for r in records)
    evaluation = sum(r.get("eval_seconds") or 0.0 for r in records) + final_eval_seconds
    return {"train_images_per_s": images / train if train > 0 else None, "train_seconds": train,
            "eval_seconds": evaluation, "device_hours": (train + evaluation) * world_size / 3600,
            "device_kind": device_kind, "world_size": world_size}


@contextlib.contextmanager
def _routed(view):
    """Every SpotTuneNet the view evaluates with forwards routed (its default chooses by
    device: dense on CUDA, where routing is slower but not cheaper in FLOPs). Set on the
    instances and removed after, so the method's own classes stay as they are."""
    nets = [m for m in view.modules() if isinstance(m, SpotTuneNet)]
    for net in nets:
        net.forward = partial(SpotTuneNet.forward, net, routed=True)
    try:
        yield
    finally:
        for net in nets:
            del net.forward


@contextlib.contextmanager
def _frozen(module):
    """Every parameter of `module` without requires_grad for the count, restored after.
    FlopCounterMode's module tracker hooks the gradient of each module output that requires
    it, and fails on one with no gradient function: a parameter a module returns as is
    (SpotTune-Global's policy logits) still requires grad under no_grad."""
    trained = [p for p in module.parameters() if p.requires_grad]
    for parameter in trained:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in trained:
            parameter.requires_grad_(True)


@torch.no_grad()
def flops_per_image(view, loader, policy, seed: int = 0, limit: int = FLOP_IMAGES) -> dict:
    """{"flops_per_image", "images_counted"} of `view` (a method or a joint job's domain view)
    on the first `limit` images of `loader` under test-time `policy` (STATIC_FLOP_IMAGES at
    most without per-image decisions). A random policy draws from a forked RNG seeded with
    `seed`: the training RNG stream is untouched."""
    if not any(isinstance(m, SpotTuneNet) for m in view.modules()):
        limit = min(limit, STATIC_FLOP_IMAGES)
    view.use_eval_policy(policy)
    view.eval()
    counted, counter = 0, FlopCounterMode(display=False)
    device = next(view.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), _routed(view), _frozen(view), \
            counter:
        torch.manual_seed(seed)
        for images, _, _ in loader:
            images = images[:limit - counted]
            with view.autocast():
                view.predict(images)
            counted += len(images)
            if counted >= limit:
                break
    return {"flops_per_image": counter.get_total_flops() / counted if counted else None,
            "images_counted": counted}
