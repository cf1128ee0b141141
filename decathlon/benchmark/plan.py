"""The whole benchmark as a plan of jobs: pretrain once, then (method, domain, seed) jobs.

Folders are named from the settings, so rerunning the same command finds its own work:

    <out>/pretrain/<preset>[-h<hash>]-seed0/              the shared backbone
    <out>/jobs/<preset>-<protocol>[-h<hash>]/<method>/<domain>/seed<k>/

(`-h<hash>` appears when hyperparameters were overridden.) A folder with `done` is
skipped; one with a checkpoint is resumed; the others start fresh. How the plan is run
(ranks, several jobs per device) is decathlon.benchmark.run.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from decathlon.data import SOURCE_DOMAIN, TARGET_DOMAINS, read_manifest, split_entry
from decathlon.engine import JobSpec
from decathlon.engine.teacher import TEACHER_METHOD
from decathlon.benchmark.hparams_registry import hparams, joint_hparams, preset_protocol, pretrain_hparams
from decathlon.methods import BOARD_METHODS, METHODS, defined_on, methods_on


@dataclass
class BenchmarkConfig:
    data: str = "data/synthetic"
    out: str | None = None
    methods: tuple = BOARD_METHODS     # the ResNet-26 board (decathlon.methods.default_methods)
    domains: tuple = TARGET_DOMAINS
    preset: str = "cpu_demo"
    protocol: str | None = None        # None: the preset's own (trainval for spottune_paper)
    seeds: int = 1
    device: str = "auto"
    overrides: dict = field(default_factory=dict)
    compile: bool = False
    progress: bool = True
    cuda_graphs: bool | None = None    # None: on CUDA, off elsewhere
    cudnn_benchmark: bool = True       # on CUDA (decathlon.engine.trainer.JobSpec)
    tensorboard: bool = False          # every job also writes TensorBoard events (JobSpec.tensorboard)
    jobs_per_device: int | None = None  # None: decathlon.benchmark.run.default_jobs_per_device
    threads_per_job: int | None = None  # CPU threads of each job process; None: shared out evenly
    backbone: str | None = None         # a backbone made elsewhere (ours or the public .t7): no pretraining
    backbone_sha256: str | None = None  # set by the runner once the file is checked

    def __post_init__(self):
        self.protocol = self.protocol or preset_protocol(self.preset)


def _override_tag(overrides: dict) -> str:
    if not overrides:
        return ""
    digest = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
    return f"-h{digest}"


def default_out(config: BenchmarkConfig, synthetic: bool) -> str:
    return f"runs/{config.preset}-{'synthetic' if synthetic else 'real'}"


def _backbone_tag(config: BenchmarkConfig) -> str:
    return f"-backbone-{config.backbone_sha256[:12]}" if config.backbone else ""


def pretrain_folder(config: BenchmarkConfig) -> Path:
    """The pretraining job, or with --backbone the given backbone's evaluation on imagenet12."""
    name = f"{config.preset}{_override_tag(pretrain_overrides(config))}{_backbone_tag(config)}-seed0"
    return Path(config.out) / "pretrain" / name


def planned_methods(methods) -> tuple:
    """The run's methods, with the teacher method in front where a distilling method
    (nettailor) needs it and the user did not select it: its jobs are then part of the
    run (and of its tables) like any other, trained once and reused as teachers."""
    distils = any(getattr(METHODS[m], "needs_teacher", False) for m in methods)
    return ((TEACHER_METHOD,) if distils and TEACHER_METHOD not in methods else ()) + tuple(methods)


def plan_jobs(config: BenchmarkConfig, backbone: Path) -> list:
    """Every job of the run, in a fixed order: one per (method, domain, seed), or for a
    multi-domain method (spottune_joint) one per seed over all the run's domains. A
    distilling method's job names its teacher: the finetune job of its domain and seed."""
    jobs = []
    for seed in range(config.seeds):
        for method in planned_methods(config.methods):
            joint = METHODS[method].multi_domain
            for domains in ([config.domains] if joint else [(d,) for d in config.domains]):
                overrides = _known(config.overrides, method, domains[0], config.preset)
                # Named by the overrides that apply to the method: a job they do not change is
                # the preset's own job, found (and reused) where a run without them put it.
                group = Path(config.out) / "jobs" / (f"{config.preset}-{config.protocol}{_override_tag(overrides)}"
                                                     f"{_backbone_tag(config)}")
                hp = (joint_hparams(method, domains, config.preset, overrides) if joint
                      else hparams(method, domains[0], config.preset, overrides))
                label = domain_label(domains)
                jobs.append(JobSpec(method, label, config.data, str(group / method / label / f"seed{seed}"), hp,
                                    protocol=config.protocol, seed=seed, backbone=str(backbone),
                                    device=config.device, compile=config.compile, progress=config.progress,
                                    resume=True, data_parallel=False, cuda_graphs=config.cuda_graphs,
                                    cudnn_benchmark=config.cudnn_benchmark, tensorboard=config.tensorboard,
                                    run_dir=config.out, domains=domains if joint else (),
                                    extra=job_extra(config.preset, overrides)))
    teachers = {(spec.domain, spec.seed): spec.out for spec in jobs if spec.method == TEACHER_METHOD}
    for spec in jobs:
        if getattr(METHODS[spec.method], "needs_teacher", False):
            spec.teacher = teachers[(spec.domain, spec.seed)]
    return jobs


def teacher_waves(jobs: list) -> tuple:
    """(the jobs some other job learns from, the rest): the first wave must finish before
    the second starts, whatever the number of processes."""
    taught = {spec.teacher for spec in jobs if spec.teacher}
    return [spec for spec in jobs if spec.out in taught], [spec for spec in jobs if spec.out not in taught]


def domain_label(domains) -> str:
    """A job's domain field and folder name: the domain, or 'a+b+...' for a joint job."""
    return "+".join(domains)


def job_extra(preset: str, overrides: dict) -> dict:
    """What every job records beside its hyperparameters: the preset, the protocol that preset
    reproduces, and the overrides (the deliberate differences the tables show)."""
    return {"preset": preset, "preset_protocol": preset_protocol(preset), "overrides": dict(overrides)}


def _known(overrides: dict, method: str, domain: str, preset: str) -> dict:
    """The overrides that apply to this method (e.g. policy_lr only to SpotTune variants)."""
    known = hparams(method, domain, preset)
    return {k: v for k, v in overrides.items() if k in known}


def check_overrides(config: BenchmarkConfig) -> None:
    """Every override must mean something to pretraining or to one of the run's methods, and
    every method must be defined on the run's backbone arch."""
    known = set(pretrain_hparams(config.preset))
    for method in config.methods:
        known |= set(hparams(method, TARGET_DOMAINS[0], config.preset))
    unknown = sorted(set(config.overrides) - known)
    if unknown:
        raise KeyError(f"unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    check_method_backbones(config)


def check_method_backbones(config: BenchmarkConfig) -> None:
    """Every method of the run is defined on the run's backbone arch (checked before any job
    starts); one line names those that are not and those that are."""
    arch = pretrain_hparams(config.preset, pretrain_overrides(config))["arch"]
    refused = [method for method in planned_methods(config.methods) if not defined_on(METHODS[method], arch)]
    if refused:
        raise ValueError(f"backbone arch {arch!r}: method(s) {', '.join(refused)} are not defined on it; the "
                         f"methods defined on it: {', '.join(methods_on(arch))}")


def check_data(config: BenchmarkConfig) -> dict:
    """The manifest, after checking that every domain the run needs is prepared."""
    manifest = read_manifest(config.data)
    for domain in (SOURCE_DOMAIN, *config.domains):
        split_entry(manifest, config.data, domain, "train")
        split_entry(manifest, config.data, domain, "val")
    return manifest


def pretrain_overrides(config: BenchmarkConfig) -> dict:
    """Width (and other shared keys) overridden for the jobs apply to pretraining too."""
    known = pretrain_hparams(config.preset)
    return {k: v for k, v in config.overrides.items() if k in known}
