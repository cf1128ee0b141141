"""Train one (method, domain, seed) job: the loop, evaluation, records, checkpoints, resume.

A multi-domain method (`Method.multi_domain`, e.g. spottune_joint) trains one job over
`spec.domains`: their training batches interleaved (decathlon.engine.interleave), each
domain evaluated and predicted on its own.

A job folder holds `record.jsonl` (one JSON line per epoch, appended), `checkpoint.pt`
(written atomically after every epoch), predictions and `final.json` once finished
(decathlon.engine.results), then a `done` marker. A killed job loses at most its current
epoch: rerun with resume and it continues from the last checkpoint. On CPU with fixed
seeds the resumed job ends with exactly the weights of an uninterrupted one, because the
data order and augmentation are functions of (seed, epoch) and the RNG state is saved.

The loop never waits for the device within an epoch: the step (decathlon.engine.step,
a CUDA graph on CUDA) returns its losses as device tensors, summed on the device and
read once at the end of the epoch; the progress bar reads them every
`PROGRESS_EVERY` steps.

What a job refuses before it trains or writes anything, and the loss check after each
epoch, are decathlon.engine.job_checks. The job folder is locked (`folder_lock`, by the
job's first process) while the job runs: a second job into the same folder is refused,
naming the process that holds it.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from decathlon.data import ShardLoader, read_manifest, split_entry, verify_split_shards
from decathlon.engine import distributed
from decathlon.checkpoints import (CheckpointError, arch_record, check_resumable, load_backbone, load_checkpoint,
                                   save_atomic)
from decathlon.engine.cost import reset_peak_memory
from decathlon.engine.epoch_record import EpochBoard, epoch_record
from decathlon.engine.evaluation import evaluate
from decathlon.engine.interleave import InterleavedLoader
from decathlon.engine.job_checks import check_finite, check_seed, check_training_length, data_identity
from decathlon.engine.job_config import job_settings
from decathlon.engine.results import final_splits, finish
from decathlon.engine.schedule import lr_schedule
from decathlon.engine.step import LossMeter, configure_precision, make_step
from decathlon.engine.teacher import teacher_arguments
from decathlon.files import folder_lock
from decathlon.jobdir import CHECKPOINT_FILE, append_record, truncate_records, write_config
from decathlon.methods import get_method

PROTOCOLS = {"train": ("train",), "trainval": ("train", "val")}
PROGRESS_EVERY = 25   # steps between two reads of the running loss for the progress bar


@dataclass
class JobSpec:
    method: str
    domain: str
    data: str
    out: str
    hparams: dict
    protocol: str = "train"
    seed: int = 0
    backbone: str | None = None
    device: str = "auto"
    compile: bool = False
    progress: bool = True
    resume: bool = False
    data_parallel: bool = True   # False: this process runs the job alone, even under torchrun
    cuda_graphs: bool | None = None   # None: on CUDA (not under DDP or compile), never on CPU
    cudnn_benchmark: bool = True      # on CUDA: cuDNN times its algorithms per shape, as the public codes set it
    run_dir: str | None = None   # the benchmark run: a backbone under it is "pretrained by this run"
    domains: tuple = ()          # a multi-domain job's domains (then `domain` is their label)
    extra: dict = field(default_factory=dict)   # recorded as is (e.g. the preset name)
    teacher: str | None = None   # a distilling method's teacher: a finished finetune job folder
    tensorboard: bool = False    # also write each record line as TensorBoard events (epoch_record)

    def identity(self) -> dict:
        return {"method": self.method, "domain": self.domain, "protocol": self.protocol, "seed": self.seed,
                "hparams": self.hparams, **({"teacher": self.teacher} if self.teacher else {})}

    @property
    def trained_domains(self) -> tuple:
        return tuple(self.domains) or (self.domain,)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _build_method(spec: JobSpec, method_cls, num_classes, ctx):
    """The method on the job's device, wrapped for DDP / compile, with its precision."""
    hp = spec.hparams
    backbone = None
    if method_cls.uses_backbone:
        if not spec.backbone:
            raise ValueError(f"method {spec.method!r} starts from a pretrained backbone: pass --backbone "
                             f"(made by `python -m decathlon pretrain`) or --backbone-weights")
        backbone = load_backbone(spec.backbone, arch_record(hp), spec.run_dir)
    teacher = teacher_arguments(spec, method_cls)
    torch.manual_seed(spec.seed)
    method = method_cls(num_classes, hp, backbone and backbone["state"], **teacher).to(ctx.device)
    cuda = ctx.device.type == "cuda"
    if cuda:
        method = method.to(memory_format=torch.channels_last)
    configure_precision(method, hp["precision"], ctx.device)
    if ctx.distributed:   # a joint step leaves the parts of absent domains unused
        method.wrap(lambda net: torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if cuda else None, find_unused_parameters=method.multi_domain))
    if spec.compile:
        method.wrap(torch.compile)
    return method, backbone


def _loaders(spec: JobSpec, manifest: dict, ctx, multi_domain: bool) -> tuple:
    """(training loader, training images per epoch, {(domain, split): evaluation loader})."""
    hp, cuda = spec.hparams, ctx.device.type == "cuda"
    common = dict(protocol=hp["augmentation"], seed=spec.seed, device=ctx.device, rank=ctx.rank,
                  world_size=ctx.world_size, channels_last=cuda, crop_rounding=hp["crop_rounding"])
    trains = {d: ShardLoader(spec.data, d, PROTOCOLS[spec.protocol], hp["batch_size"], train=True, shuffle=True,
                             drop_last=hp["drop_last"], **common) for d in spec.trained_domains}
    train = (InterleavedLoader(trains, spec.seed, hp["joint_domains_per_step"]) if multi_domain
             else trains[spec.domain])
    images = sum(min(len(loader) * hp["batch_size"], loader.images_per_rank) for loader in trains.values()) \
        * ctx.world_size
    evaluation = {(d, s): ShardLoader(spec.data, d, s, hp["eval_batch_size"], train=False, shuffle=False,
                                      drop_last=False, **common)
                  for d in spec.trained_domains for s in final_splits(spec, manifest, d)}
    return train, images, evaluation


def run_job(spec: JobSpec, method_cls: type | None = None, evaluate_only: bool = False) -> dict:
    """Train and evaluate one job; returns final.json. With `spec.resume` an existing
    checkpoint is continued; without, it is an error (nothing is overwritten).
    `method_cls` replaces the registry lookup (pretraining uses its own subclass);
    `evaluate_only`: a job of no epochs that only evaluates (a given backbone)."""
    if spec.protocol not in PROTOCOLS:
        raise ValueError(f"protocol {spec.protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    check_seed(spec.seed)
    ctx = distributed.init(spec.device) if spec.data_parallel else distributed.local(spec.device)
    manifest = read_manifest(spec.data)
    for domain in spec.trained_domains:
        for split in PROTOCOLS[spec.protocol]:
            split_entry(manifest, spec.data, domain, split)
    method_cls = method_cls or get_method(spec.method)
    if method_cls.multi_domain != bool(spec.domains):
        raise ValueError(f"method {spec.method!r} trains {'several domains' if method_cls.multi_domain else 'one domain'}"
                         f" per job; the job names {'one' if not spec.domains else len(spec.domains)}")
    if not evaluate_only:
        check_training_length(spec.hparams, manifest, spec.data, spec.trained_domains, PROTOCOLS[spec.protocol],
                              ctx.world_size, spec.hparams["drop_last"])

    def splits_read(domain):
        return (() if evaluate_only else PROTOCOLS[spec.protocol]) + tuple(final_splits(spec, manifest, domain))

    def verify_shards():
        for domain in spec.trained_domains:
            verify_split_shards(spec.data, manifest, domain, splits_read(domain))

    if ctx.is_main:
        verify_shards()
    distributed.barrier(ctx)   # the other processes then find the first one's result remembered
    if not ctx.is_main:
        verify_shards()
    identity = {**spec.identity(), "data": data_identity(spec.data, manifest, spec.trained_domains, splits_read)}
    with folder_lock(spec.out, "job folder") if ctx.is_main else contextlib.nullcontext():
        return _run_locked(spec, method_cls, manifest, ctx, identity)


def _run_locked(spec: JobSpec, method_cls: type, manifest: dict, ctx, identity: dict) -> dict:
    """The job, once checked and its folder locked: resume, then per epoch train, step the
    schedule, evaluate on val, write the record and the checkpoint; then finish."""
    if ctx.device.type == "cuda":   # the public codes set it; off: cuDNN's heuristic choice of algorithms
        torch.backends.cudnn.benchmark = spec.cudnn_benchmark
    reset_peak_memory(ctx.device)   # final.json's cost: this job's peak
    out, hp = Path(spec.out), spec.hparams
    classes = {d: manifest["domains"][d]["num_classes"] for d in spec.trained_domains}
    method, backbone = _build_method(spec, method_cls, classes if method_cls.multi_domain else classes[spec.domain],
                                     ctx)
    identity["backbone_sha256"] = backbone["provenance"]["sha256"] if backbone else None
    train_loader, epoch_images, eval_loaders = _loaders(spec, manifest, ctx, method_cls.multi_domain)
    # Each epoch is scored on val only: never on test (the protocol trap of picking by
    # test accuracy), and not at all under trainval, whose val is training data.
    monitored = {key: loader for key, loader in eval_loaders.items() if key[1] == "val"}
    start_epoch, scheduler = _resume(spec, method, identity, ctx)
    step = make_step(method, ctx.device, _use_graphs(spec, ctx), hp["batch_size"])
    scores = {}
    with EpochBoard(out, start_epoch, spec.tensorboard and ctx.is_main) as board:
        for epoch in range(start_epoch, hp["epochs"]):
            if method.begin_epoch(epoch):   # a new structure and optimizer: a new schedule and step
                scheduler = lr_schedule(method.optimizer, hp, since=epoch)
                step = make_step(method, ctx.device, _use_graphs(spec, ctx), hp["batch_size"])
            losses, seconds, trained_until = train_one_epoch(method, step, train_loader, epoch, spec, ctx)
            scheduler.step()
            scores, eval_seconds = evaluate_monitored(method, monitored, ctx)
            if ctx.is_main:
                record = epoch_record(epoch, losses, method.optimizer.param_groups[0]["lr"], seconds, epoch_images,
                                      eval_seconds, trained_until, step.kind, scores)
                append_record(out, record)
                board.add(record)
                _save_checkpoint(out / CHECKPOINT_FILE, identity, epoch, method, scheduler)
            distributed.barrier(ctx)
    return finish(spec, method, eval_loaders, scores, ctx, manifest, backbone, _execution(spec, ctx, step))


def _resume(spec: JobSpec, method, identity: dict, ctx) -> tuple:
    """(first epoch to train, lr schedule): 0, or the one after the checkpoint's when resuming
    (the checkpoint must be this job's); record lines past it are dropped."""
    out = Path(spec.out)
    path, start_epoch, scheduler = out / CHECKPOINT_FILE, 0, lr_schedule(method.optimizer, spec.hparams)
    if path.is_file() and not spec.resume:
        raise CheckpointError(f"{path}: this job already has a checkpoint; pass --resume to continue "
                              f"it or choose another output folder")
    if path.is_file():
        ckpt = load_checkpoint(path, "job")
        check_resumable(ckpt, path, identity)
        method.load_state_dict(ckpt["method"])   # first: it may change the structure and optimizer
        method.optimizer.load_state_dict(ckpt["optimizer"])
        scheduler = lr_schedule(method.optimizer, spec.hparams)
        scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"])
        start_epoch = ckpt["epoch"] + 1
    out.mkdir(parents=True, exist_ok=True)
    if ctx.is_main:
        truncate_records(out, start_epoch)
        write_config(out, job_settings(spec))   # the job's options: `decathlon train --config` runs it again
    return start_epoch, scheduler


def train_one_epoch(method, step, loader, epoch: int, spec: JobSpec, ctx) -> tuple:
    """One pass over the training loader: (mean losses, seconds, wall-clock end). The losses
    stay on the device and are read once, at the end (the progress bar reads them every
    PROGRESS_EVERY steps); a non-finite one stops the job."""
    loader.set_epoch(epoch)
    began, meter, shown = time.perf_counter(), LossMeter(), spec.progress and ctx.is_main
    bar = tqdm(loader, desc=f"{spec.method}/{spec.domain} epoch {epoch + 1}/{spec.hparams['epochs']}",
               leave=False, disable=not shown)
    for batch in bar:   # (images, labels, ids), or a joint step's (domain, images, labels, ...)
        meter.add(step(*batch) if method.multi_domain else step(batch[0], batch[1]))
        if shown and meter.steps % PROGRESS_EVERY == 0:
            bar.set_postfix(loss=f"{meter.means()['loss']:.3f}")
    losses = meter.means()   # waits for the device: the epoch's work is done after this
    check_finite(losses, epoch + 1, Path(spec.out))
    return losses, time.perf_counter() - began, time.time()   # wall clock: other jobs' records


def evaluate_monitored(method, monitored: dict, ctx) -> tuple:
    """({(domain, split): result} with the reported test-time policy, seconds taken)."""
    hp, began = method.hparams, time.perf_counter()
    scores = {key: evaluate(method.domain_view(key[0]), loader, ctx, method.eval_policies()[0],
                            hp.get("sample_draws", 1), hp.get("sample_seed", 0)) for key, loader in monitored.items()}
    return scores, time.perf_counter() - began


def _save_checkpoint(path: Path, identity: dict, epoch: int, method, scheduler) -> None:
    save_atomic({"format": 1, "kind": "job", "identity": identity, "epoch": epoch, "method": method.state_dict(),
                 "optimizer": method.optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "rng": _rng_state()}, path)


def _use_graphs(spec: JobSpec, ctx) -> bool:
    """CUDA graphs unless told: on CUDA, not under DDP or torch.compile."""
    if spec.cuda_graphs is not None:
        return spec.cuda_graphs
    return ctx.device.type == "cuda" and not ctx.distributed and not spec.compile


def _execution(spec: JobSpec, ctx, step) -> dict:
    execution = {"device": str(ctx.device), "world_size": ctx.world_size, "step": step.kind,
                 "torch": torch.__version__}
    if ctx.device.type == "cuda":
        execution.update(device_name=torch.cuda.get_device_name(ctx.device), cudnn_benchmark=spec.cudnn_benchmark)
    return execution

