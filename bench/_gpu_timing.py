"""What bench_gpu.py measures with: its settings, synthetic on-device batches, timed calls."""
from __future__ import annotations

import gc
import statistics
import time

import torch

from _common import synchronize
from decathlon.engine import autocast_for

NUM_CLASSES = 100
MEAN = (0.485, 0.456, 0.406)   # any fixed values: the cost of normalising is what counts
STD = (0.229, 0.224, 0.225)
STARTED = time.perf_counter()


class Settings:
    """What a run measures: full GPU run, --quick, or the tiny CPU smoke version."""

    def __init__(self, args, device: torch.device):
        self.device = device
        cpu = device.type == "cpu"
        self.width = 0.125 if cpu else 1.0
        self.size = 32 if cpu else 72
        self.batches = [8] if cpu else ([128] if args.quick else [128, 256])
        self.warmup = 1 if cpu else (3 if args.quick else 5)
        self.min_steps = 3 if cpu else 5
        self.seconds = args.seconds or (1.0 if cpu else (3.0 if args.quick else 12.0))   # per timed part
        self.max_steps = 6 if cpu else 200
        self.compile = args.compile if args.compile is not None else not (args.quick or cpu)
        self.compile_budget = args.compile_budget
        self.budget = args.budget


def elapsed() -> float:
    return time.perf_counter() - STARTED


def reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def autocast(device: torch.device):
    """bf16 autocast as the engine sets it (no weight cache: CUDA-graph safe)."""
    return autocast_for("bf16", device)()


def synthetic_batch(batch: int, size: int, device: torch.device, seed: int = 0):
    """uint8 images and labels on the device, and the on-device normalisation."""
    generator = torch.Generator(device=device).manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch,), device=device, generator=generator)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    inv_std = 1 / (torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255)

    def normalised() -> torch.Tensor:
        x = (images.float() - mean) * inv_std
        return x.contiguous(memory_format=torch.channels_last)

    return normalised, labels


def measure(fn, s: Settings, images: int) -> dict:
    """Warm-up calls, then timed calls (synchronised) for about `s.seconds`; medians."""
    for _ in range(s.warmup):
        fn()
    synchronize(s.device)
    times, start = [], time.perf_counter()
    while len(times) < s.min_steps or (time.perf_counter() - start < s.seconds and len(times) < s.max_steps):
        t0 = time.perf_counter()
        fn()
        synchronize(s.device)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"step_ms": 1e3 * median, "images_per_s": images / median, "steps": len(times)}
