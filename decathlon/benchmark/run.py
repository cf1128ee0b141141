"""Running the plan: pretraining, then the jobs, over torchrun ranks and several processes
per device.

Under torchrun, pretraining (one large job, imagenet12) runs data-parallel over all
ranks; the many small per-domain jobs are spread over the ranks, one whole job per
process. Small Decathlon domains (a few thousand images) gain little from DDP, whose
per-step synchronisation costs more there than it saves, while independent jobs scale
perfectly and keep each job's result identical to a single-process run.

Several jobs per device. One small job cannot keep a GPU busy (results/bench/README.md
has the measured figures), so each rank runs
`jobs_per_device` jobs at once, each in its own spawned process taking the next job of
the rank's list. Each job stays a function of its spec and seed, so the results are those
of `jobs_per_device=1`; on a CPU they are equal bit for bit when every job gets the same
number of threads (`threads_per_job`: by default the rank's threads shared out evenly,
so compare runs with the same value, e.g. OMP_NUM_THREADS=1).
"""
from __future__ import annotations

import contextlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from decathlon.benchmark.hparams_registry import pretrain_hparams
from decathlon.benchmark.plan import (BenchmarkConfig, check_data, check_overrides, default_out, job_extra,
                                      plan_jobs, pretrain_folder, pretrain_overrides, teacher_waves)
from decathlon.data import SOURCE_DOMAIN
from decathlon.engine import distributed, evaluate_backbone, pretrain, run_job
from decathlon.inference import assemble_spottune, model_info
from decathlon.checkpoints import load_backbone, save_atomic
from decathlon.jobdir import BACKBONE_FILE, MODEL_FILE, claim_run_config, is_done
from decathlon.files import folder_lock
from decathlon.methods import get_method
from decathlon.methods.spottune import SpotTune

LARGE_GPU_GIB = 40   # a GPU with this much memory or more takes DEFAULT_LARGE_GPU_JOBS jobs at once
DEFAULT_LARGE_GPU_JOBS = 4
# `decathlon run` options that say how a run executes, not what it computes: a rerun may change them.
EXECUTION_OPTIONS = ("out", "results", "device", "jobs_per_device", "threads_per_job", "no_progress")
RUN_EXTENT = ("methods", "domains", "seeds")   # a rerun may add to them (each job checks its own identity)


def default_jobs_per_device(device: torch.device) -> int:
    """4 jobs at once on a GPU of 40 GiB or more (H100, H200, A100-80G), 2 on a smaller one,
    1 on a CPU (where the jobs' threads already share the cores)."""
    if device.type != "cuda":
        return 1
    memory_gib = torch.cuda.get_device_properties(device).total_memory / 2**30
    return DEFAULT_LARGE_GPU_JOBS if memory_gib >= LARGE_GPU_GIB else 2


def run_benchmark(config: BenchmarkConfig, settings: dict | None = None) -> list:
    """Pretrain (or reuse) the backbone, then run or resume every job; returns the job folders.
    `settings` (the command's options) are kept as <out>/config.yaml; a run folder made with
    other settings is refused before anything runs."""
    check_overrides(config)
    ctx = distributed.init(config.device)
    manifest = check_data(config)
    config.out = config.out or default_out(config, manifest["synthetic"])
    # The first process holds the run folder: a second run into it is refused, naming this one.
    with folder_lock(config.out, "run folder") if ctx.is_main else contextlib.nullcontext():
        if ctx.is_main and settings is not None:
            claim_run_config(config.out, {**settings, "out": str(config.out)}, EXECUTION_OPTIONS, RUN_EXTENT)
        jobs = plan_jobs(config, _backbone(config, manifest, ctx))
        per_device = config.jobs_per_device or default_jobs_per_device(ctx.device)
        threads = config.threads_per_job or max(1, torch.get_num_threads() // per_device)
        desc = f"jobs (rank {ctx.rank})" if ctx.distributed else "jobs"
        for wave in teacher_waves(jobs):   # teachers (finetune jobs nettailor learns from) first
            pending = [spec for spec in wave[ctx.rank::ctx.world_size] if not is_done(spec.out)]
            run_jobs(pending, per_device, threads, desc, config.progress)
            distributed.barrier(ctx)
        if ctx.is_main:
            export_models(jobs, Path(config.out) / "models")
    return [Path(spec.out) for spec in jobs]


def export_models(jobs: list, folder: Path) -> list:
    """One model file per finished per-domain SpotTune method and seed of the run
    (<folder>/<method>-seed<k>/spottune_multidomain.pt), as a spottune_joint job writes its
    own; written once, skipped while a domain's job is unfinished."""
    written, groups = [], {}
    for spec in jobs:
        if issubclass(get_method(spec.method), SpotTune) and not spec.domains:
            groups.setdefault((spec.method, spec.seed), []).append(Path(spec.out))
    for (method, seed), folders in groups.items():
        path = folder / f"{method}-seed{seed}" / MODEL_FILE
        if path.is_file() or not all(is_done(job) for job in folders):
            continue
        save_atomic(assemble_spottune(folders).checkpoint(**model_info(folders)), path)
        written.append(path)
    return written


def _backbone(config: BenchmarkConfig, manifest: dict, ctx) -> Path:
    """The backbone every job starts from: pretrained by this run (or earlier by the same
    command), or the --backbone file, which is then evaluated on imagenet12 for the ImNet
    column when its classifier fits the prepared imagenet12."""
    overrides = pretrain_overrides(config)
    hp, extra = pretrain_hparams(config.preset, overrides), job_extra(config.preset, overrides)
    if config.backbone:
        checked = load_backbone(config.backbone, hp["width"])   # a wrong file fails before any job
        config.backbone_sha256 = checked["provenance"]["sha256"]
        folder = pretrain_folder(config)
        classes = manifest["domains"][SOURCE_DOMAIN]["num_classes"]
        if checked["state"]["classifier.weight"].shape[0] != classes:
            if ctx.is_main:
                print(f"{config.backbone}: its classifier does not have the prepared {SOURCE_DOMAIN}'s {classes} "
                      f"classes; the ImNet column stays empty")
        elif not is_done(folder):
            evaluate_backbone(config.data, folder, config.backbone, hp, extra, config.device, config.progress)
        return Path(config.backbone)
    folder = pretrain_folder(config)
    if not is_done(folder):
        if ctx.is_main:
            print(f"pretraining the backbone on {SOURCE_DOMAIN} -> {folder}")
        pretrain(config.data, folder, hp, extra, 0, config.device, config.compile, config.progress, resume=True,
                 cuda_graphs=config.cuda_graphs, cudnn_benchmark=config.cudnn_benchmark, tensorboard=config.tensorboard)
    return folder / BACKBONE_FILE


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
