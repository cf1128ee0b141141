"""bench_models.py's torch.compile'd SpotTune tail (``tail="compiled"``): what compiling
costs, and after how many training steps it pays back, against the step counts of real jobs.

Compile time is the first training step of a new method minus its second (both eager, so a
CUDA graph capture is not counted in it), measured twice: cold, in a fresh Inductor cache
(a job's first compile on a new machine: the C++ or Triton toolchain's own start included),
and warm, after ``torch._dynamo.reset()`` with that cache kept (each later job on the
machine: Inductor's on-disk cache serves the kernels). The break-even is the compile time
over the saving per step, from the medians of the interleaved step timings.
"""
from __future__ import annotations

import math
import os
import tempfile
import time

import torch

from data_prep.synthetic import split_sizes
from decathlon.benchmark import hparams, preset_protocol
from decathlon.data import TARGET_DOMAINS, get_domain

PAPER_PRESET = "spottune_paper"


def compile_seconds(build_step, device: torch.device, synchronize) -> dict:
    """{'cold_s', 'warm_s'}: first step minus second step, cold then warm (see above);
    ``build_step()`` returns a fresh step callable of a compiled-tail method."""
    def first_minus_second() -> float:
        step, seconds = build_step(), []
        for _ in range(2):
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            seconds.append(time.perf_counter() - start)
        return seconds[0] - seconds[1]

    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="inductor-cache-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            torch._dynamo.reset()
            cold = first_minus_second()
            torch._dynamo.reset()
            warm = first_minus_second()
        finally:
            if saved is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR")
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved
    return {"cold_s": cold, "warm_s": warm}


def job_steps(domain: str, preset: str, train_images: int | None = None) -> int:
    """Training steps of one job: its preset's batch size, epochs and drop_last, on the
    domain's registry sizes (train, or train+val under the trainval protocol) unless given."""
    params = hparams("spottune", domain, preset)
    if train_images is None:
        sizes = get_domain(domain).sizes
        train_images = sizes["train"] + (sizes["val"] if preset_protocol(preset) == "trainval" else 0)
    per_epoch = (train_images // params["batch_size"] if params["drop_last"]
                 else math.ceil(train_images / params["batch_size"]))
    return per_epoch * params["epochs"]


def with_break_even(training: dict, compile_s: dict, domain: str) -> dict:
    """``training`` with the compiled tail's step ratio over the eager tail's and its cost:
    the steps until it pays back its compile time (None: never, no saving per step), beside
    a cpu_demo job's steps (the synthetic data, this domain) and a paper-preset job's (the
    smallest and the largest target domain)."""
    saving_s = (training["spottune"]["median_ms"] - training["spottune_compiled_tail"]["median_ms"]) / 1e3
    steps = {kind: math.ceil(seconds / saving_s) if saving_s > 0 else None
             for kind, seconds in compile_s.items()}
    paper = {name: job_steps(name, PAPER_PRESET) for name in TARGET_DOMAINS}
    smallest, largest = min(paper, key=paper.get), max(paper, key=paper.get)
    ratio = training["spottune_compiled_tail"]["median_ms"] / training["spottune"]["median_ms"]
    cost = {"compile": compile_s, "saving_ms_per_step": 1e3 * saving_s,
            "break_even_steps": {kind.removesuffix("_s"): n for kind, n in steps.items()},
            "cpu_demo_job_steps": {domain: job_steps(domain, "cpu_demo", split_sizes(domain)["train"])},
            f"{PAPER_PRESET}_job_steps": {smallest: paper[smallest], largest: paper[largest]}}
    return {**training, "compiled_tail_ratio": ratio, "compiled_tail": cost}


def _steps_text(n) -> str:
    return "never (no saving per step)" if n is None else f"after {n:,} steps"


def _jobs_text(cost: dict) -> str:
    return "; ".join(f"a {preset.removesuffix('_job_steps')} {name} job: {steps:,} steps"
                     for preset in ("cpu_demo_job_steps", f"{PAPER_PRESET}_job_steps")
                     for name, steps in cost[preset].items())


def summary_line(training: dict) -> str:
    """One printed line: the tails' step ratio, compile times, break-even, job lengths."""
    cost, ratio = training["compiled_tail"], training["compiled_tail_ratio"]
    even = cost["break_even_steps"]
    return (f"compiled tail  {training['spottune_compiled_tail']['median_ms']:.1f} ms, {ratio:.2f}x the eager "
            f"tail's step; compile cold {cost['compile']['cold_s']:.1f} s, warm {cost['compile']['warm_s']:.1f} s; "
            f"pays back {_steps_text(even['cold'])} (cold), {_steps_text(even['warm'])} (warm); "
            + _jobs_text(cost))


def markdown_rows(training: dict) -> list:
    """The comparison table's row of the two tails, and a line under the table."""
    cost, even = training["compiled_tail"], training["compiled_tail"]["break_even_steps"]
    row = (f"| training step: spottune (compiled tail) / spottune (eager tail) | "
           f"{training['spottune']['median_ms']:.1f} | {training['spottune_compiled_tail']['median_ms']:.1f} | "
           f"{training['compiled_tail_ratio']:.2f}x | | |")
    note = (f"Compiled tail (`tail=\"compiled\"`): compile time {cost['compile']['cold_s']:.1f} s cold (fresh "
            f"Inductor cache), {cost['compile']['warm_s']:.1f} s warm (same process after a dynamo reset, kernels "
            f"from the on-disk cache); saving {cost['saving_ms_per_step']:.1f} ms per step; it pays back "
            f"{_steps_text(even['cold'])} cold, "
            f"{_steps_text(even['warm'])} warm. For scale: {_jobs_text(cost)}.")
    return [row], note
