"""The local runner: the jobs in spawned processes on the local host, `per_device` at a time.

One small job cannot keep a GPU busy (results/bench/README.md has the measured figures),
so `jobs_per_device` jobs run at once, each in its own spawned process taking the next job
of the list. Each job stays a function of its spec and seed, so the results are those of
`jobs_per_device=1`; on a CPU they are equal bit for bit when every job gets the same
number of threads (`threads_per_job`: by default the process's threads shared out evenly,
so compare runs with the same value, e.g. OMP_NUM_THREADS=1).
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

import torch
from tqdm import tqdm

from decathlon.engine import run_job

LARGE_GPU_GIB = 40   # a GPU with this much memory or more takes DEFAULT_LARGE_GPU_JOBS jobs at once
DEFAULT_LARGE_GPU_JOBS = 4


def default_jobs_per_device(device: torch.device) -> int:
    """4 jobs at once on a GPU of 40 GiB or more (H100, H200, A100-80G), 2 on a smaller one,
    1 on a CPU (where the jobs' threads already share the cores)."""
    if device.type != "cuda":
        return 1
    memory_gib = torch.cuda.get_device_properties(device).total_memory / 2**30
    return DEFAULT_LARGE_GPU_JOBS if memory_gib >= LARGE_GPU_GIB else 2


def run_jobs(specs: list, per_device: int, threads: int, desc: str = "jobs", progress: bool = True) -> None:
    """Run `specs`, `per_device` at a time, each job with `threads` torch threads."""
    if per_device < 1 or threads < 1:
        raise ValueError(f"jobs per device ({per_device}) and threads per job ({threads}) must be at least 1")
    bar = tqdm(total=len(specs), desc=desc, unit="job", disable=not progress)
    if per_device == 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for spec in specs:
                bar.set_postfix_str(f"{spec.method}/{spec.domain}/seed{spec.seed}")
                run_job(spec)
                bar.update()
        finally:
            torch.set_num_threads(before)
        return
    # Spawned, not forked: CUDA cannot be used in a forked child, and a clean process
    # per worker keeps each job's state its own. Per-epoch bars of parallel jobs would
    # interleave on the terminal: only the job bar is shown.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(per_device, mp_context=context, initializer=torch.set_num_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(run_job, replace(spec, progress=False)) for spec in specs]
        try:
            for future in as_completed(futures):
                future.result()
                bar.update()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
