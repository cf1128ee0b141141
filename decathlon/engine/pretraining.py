"""Pretraining jobs: the backbone trained from scratch on imagenet12, saved as backbone.pt;
or, for a backbone made elsewhere (ours or the public file), its evaluation on imagenet12.
Their methods are decathlon.methods.pretrain."""
from __future__ import annotations

from pathlib import Path

from decathlon.data import SOURCE_DOMAIN
from decathlon.engine.trainer import JobSpec, run_job
from decathlon.jobdir import BACKBONE_FILE
from decathlon.methods.pretrain import BackboneEvaluation, Pretraining


def evaluate_backbone(data, out, backbone, hp: dict, extra: dict, device="auto", progress=True) -> dict:
    """Evaluate `backbone` (our backbone.pt or a public .t7) on imagenet12 into job folder `out`."""
    spec = JobSpec("pretrain", SOURCE_DOMAIN, str(data), str(out), dict(hp, epochs=0), backbone=str(backbone),
                   device=device, progress=progress, resume=True, extra=extra)
    return run_job(spec, BackboneEvaluation, evaluate_only=True)


def pretrain(data, out, hp: dict, extra: dict, seed=0, device="auto", compile=False, progress=True,
             resume=False, cuda_graphs: bool | None = None, cudnn_benchmark: bool = True,
             tensorboard: bool = False) -> Path:
    """Train (or resume) the backbone with hyperparameters `hp` and save <out>/backbone.pt;
    returns its path. `extra` is recorded as is (the preset, the overrides)."""
    spec = JobSpec("pretrain", SOURCE_DOMAIN, str(data), str(out), hp, seed=seed, device=device, compile=compile,
                   progress=progress, resume=resume, cuda_graphs=cuda_graphs, cudnn_benchmark=cudnn_benchmark,
                   extra=extra, tensorboard=tensorboard)
    run_job(spec, Pretraining)
    return Path(out) / BACKBONE_FILE
