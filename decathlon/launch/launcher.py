"""`launch`: run a list of jobs to completion with the chosen launcher.

- local: decathlon.launch.local's runner, `jobs_per_device` at a time in the local host's
  processes;
- torchrun: the jobs spread over torchrun's processes (rank r takes every world_size-th
  job), each process running its share as local does, then a barrier;
- slurm: one submitit job array (decathlon.launch.slurm), polled until every task ends.

Finished jobs (`done`) are skipped by all three, unfinished ones resumed from their folder.
"""
from __future__ import annotations

import os

import torch

from decathlon.engine import distributed
from decathlon.jobdir import is_done
from decathlon.launch.config import LaunchError, LauncherConfig, under_torchrun
from decathlon.launch.local import default_jobs_per_device, run_jobs
from decathlon.launch.slurm import slurm_executor, submit, wait_for
from decathlon.launch.tasks import BackboneJob

DEFAULT_SLURM_FOLDER = "submitit"   # without --slurm-folder; the benchmark runner puts it in the run folder


def check_launcher(config: LauncherConfig) -> None:
    """The launcher fits the process it runs in (one line otherwise)."""
    if config.name == "torchrun" and not under_torchrun():
        raise LaunchError("--launcher torchrun: RANK and WORLD_SIZE are not set, so torchrun did not start this "
                          "process; start it as `torchrun --nproc_per_node=N run_decathlon.py ...`")
    if config.name != "torchrun" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise LaunchError(f"--launcher {config.name}: this is process {os.environ.get('RANK')} of "
                          f"{os.environ['WORLD_SIZE']} under torchrun, and each would run every job; "
                          f"use --launcher torchrun, or start {config.name} without torchrun")


def launch(specs: list, config: LauncherConfig, desc: str = "jobs", progress: bool = True) -> None:
    """Run every spec (JobSpec) to completion, or raise naming the jobs that failed."""
    check_launcher(config)
    if config.name == "slurm":
        pending = [spec for spec in specs if not is_done(spec.out)]
        if pending:
            executor = slurm_executor(config, config.folder or DEFAULT_SLURM_FOLDER)
            wait_for(submit(pending, executor, slurm_threads(config)), pending, desc, progress)
        return
    ctx = distributed.init(specs[0].device if specs else "auto")
    mine = [spec for spec in specs[ctx.rank::ctx.world_size] if not is_done(spec.out)]
    per_device = config.jobs_per_device or default_jobs_per_device(ctx.device)
    threads = config.threads_per_job or max(1, torch.get_num_threads() // per_device)
    run_jobs(mine, per_device, threads, f"{desc} (rank {ctx.rank})" if ctx.distributed else desc, progress)
    distributed.barrier(ctx)


def run_backbone(job: BackboneJob, config: LauncherConfig) -> None:
    """The backbone's job: in this process for local and torchrun (pretraining then runs
    data-parallel over torchrun's processes), one SLURM job for slurm."""
    check_launcher(config)
    if is_done(job.out):
        return
    if config.name == "slurm":
        launch([job], config, desc="backbone job", progress=job.progress)
    else:
        job()


def slurm_threads(config: LauncherConfig) -> int:
    """torch threads of a SLURM task: --threads-per-job, else the CPUs it asked for, else 1."""
    return config.threads_per_job or config.cpus_per_job or 1
