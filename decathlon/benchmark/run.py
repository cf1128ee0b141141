"""Running the plan: the backbone's job, then the jobs in waves, through a launcher
(decathlon.launch: local, torchrun or slurm).

Under torchrun, pretraining (one large job, imagenet12) runs data-parallel over all
ranks; the many small per-domain jobs are spread over the ranks, one whole job per
process. Small Decathlon domains (a few thousand images) gain little from DDP, whose
per-step synchronisation costs more there than it saves, while independent jobs scale
perfectly and keep each job's result identical to a single-process run. On SLURM the
backbone's job is one submitted job, then each wave is one job array.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

from decathlon.benchmark.hparams_registry import pretrain_hparams
from decathlon.benchmark.plan import (BenchmarkConfig, check_data, check_overrides, default_out, job_extra,
                                      plan_jobs, pretrain_folder, pretrain_overrides, teacher_waves)
from decathlon.data import SOURCE_DOMAIN
from decathlon.engine import distributed
from decathlon.inference import assemble_spottune, model_info
from decathlon.checkpoints import arch_record, load_backbone, save_atomic
from decathlon.jobdir import BACKBONE_FILE, MODEL_FILE, claim_run_config, is_done
from decathlon.files import folder_lock
from decathlon.launch import BackboneJob, LauncherConfig, check_launcher, default_launcher, launch, run_backbone
from decathlon.methods import get_method
from decathlon.methods.spottune import SpotTune
from decathlon.models import is_timm

SLURM_FOLDER = "submitit"   # under the run folder: submitit's logs, without --slurm-folder
# `decathlon run` options that say how a run executes, not what it computes: a rerun may change them.
EXECUTION_OPTIONS = ("out", "results", "device", "jobs_per_device", "threads_per_job", "no_progress", "launcher",
                     "slurm_partition", "slurm_time", "slurm_gpus", "slurm_cpus", "slurm_mem_gb",
                     "slurm_array_parallelism", "slurm_folder", "slurm_option")
RUN_EXTENT = ("methods", "domains", "seeds")   # a rerun may add to them (each job checks its own identity)


def run_benchmark(config: BenchmarkConfig, launcher: LauncherConfig | None = None,
                  settings: dict | None = None) -> list:
    """Pretrain (or reuse) the backbone, then run or resume every job through `launcher`
    (default: torchrun under torchrun, else local, with the config's jobs per device and
    threads per job); returns the job folders. `settings` (the command's options) are kept
    as <out>/config.yaml; a run folder made with other settings is refused before anything runs."""
    check_overrides(config)
    launcher = launcher or LauncherConfig(default_launcher(), config.jobs_per_device, config.threads_per_job)
    check_launcher(launcher)
    ctx = distributed.init(config.device)
    manifest = check_data(config)
    config.out = config.out or default_out(config, manifest["synthetic"])
    # The first process holds the run folder: a second run into it is refused, naming this one.
    with folder_lock(config.out, "run folder") if ctx.is_main else contextlib.nullcontext():
        if ctx.is_main and settings is not None:
            claim_run_config(config.out, {**settings, "out": str(config.out)}, EXECUTION_OPTIONS, RUN_EXTENT)
        launcher = replace(launcher, folder=launcher.folder or str(Path(config.out) / SLURM_FOLDER))
        jobs = plan_jobs(config, backbone_of_run(config, manifest, ctx, launcher))
        for wave in teacher_waves(jobs):   # teachers (finetune jobs nettailor learns from) first
            launch(wave, launcher, "jobs", config.progress)
        if ctx.is_main:
            export_models(jobs, Path(config.out) / "models")
    return [Path(spec.out) for spec in jobs]


def export_models(jobs: list, folder: Path) -> list:
    """One model file per finished per-domain SpotTune method and seed of the run
    (<folder>/<method>-seed<k>/spottune_multidomain.pt), as a spottune_joint job writes its
    own; written once, skipped while a domain's job is unfinished. Jobs on a timm backbone
    have their domain files only (docs/spottune_any_backbone.md)."""
    written, groups = [], {}
    for spec in jobs:
        if (issubclass(get_method(spec.method), SpotTune) and not spec.domains
                and not is_timm(spec.hparams.get("arch", "resnet26"))):
            groups.setdefault((spec.method, spec.seed), []).append(Path(spec.out))
    for (method, seed), folders in groups.items():
        path = folder / f"{method}-seed{seed}" / MODEL_FILE
        if path.is_file() or not all(is_done(job) for job in folders):
            continue
        save_atomic(assemble_spottune(folders).checkpoint(**model_info(folders)), path)
        written.append(path)
    return written


def backbone_of_run(config: BenchmarkConfig, manifest: dict, ctx, launcher: LauncherConfig) -> Path:
    """The backbone every job starts from: pretrained by this run (or earlier by the same
    command), or the --backbone / --backbone-weights file (or timm-hub), which is then
    evaluated on imagenet12 for the ImNet column when it has a classifier that fits the
    prepared imagenet12 (weights made elsewhere have none: their column stays empty). Either is one job, run by
    `launcher` (decathlon.launch.run_backbone)."""
    overrides = pretrain_overrides(config)
    hp, extra = pretrain_hparams(config.preset, overrides), job_extra(config.preset, overrides)
    if config.backbone:
        checked = load_backbone(config.backbone, arch_record(hp))   # a wrong file fails before any job
        config.backbone_sha256 = checked["provenance"]["sha256"]
        folder = pretrain_folder(config)
        classes = manifest["domains"][SOURCE_DOMAIN]["num_classes"]
        classifier = checked["state"].get("classifier.weight")
        if classifier is None or classifier.shape[0] != classes:
            if ctx.is_main:
                why = ("weights made elsewhere: their classifier (dropped) is not one of the prepared "
                       f"{SOURCE_DOMAIN}" if classifier is None
                       else f"its classifier does not have the prepared {SOURCE_DOMAIN}'s {classes} classes")
                print(f"{config.backbone}: {why}; the ImNet column stays empty")
        else:
            run_backbone(BackboneJob(config.data, str(folder), hp, extra, backbone=str(config.backbone),
                                     device=config.device, progress=config.progress), launcher)
        return Path(config.backbone)
    folder = pretrain_folder(config)
    if not is_done(folder):
        if ctx.is_main:
            print(f"pretraining the backbone on {SOURCE_DOMAIN} -> {folder}")
        run_backbone(BackboneJob(config.data, str(folder), hp, extra, device=config.device, compile=config.compile,
                                 progress=config.progress, cuda_graphs=config.cuda_graphs,
                                 cudnn_benchmark=config.cudnn_benchmark, tensorboard=config.tensorboard), launcher)
    return folder / BACKBONE_FILE
