"""Pretraining: the backbone trained from scratch on imagenet12, saved as backbone.pt."""
from __future__ import annotations

from pathlib import Path

from decathlon.data.domains import SOURCE_DOMAIN
from decathlon.engine.checkpoint import backbone_checkpoint
from decathlon.engine.trainer import JobSpec, run_job
from decathlon.methods.plain import Scratch

BACKBONE_FILE = "backbone.pt"


class Pretraining(Scratch):
    """Scratch training on the source domain whose export is the shared backbone."""
    name = "pretrain"

    def exports(self) -> dict:
        return {BACKBONE_FILE: backbone_checkpoint(self.net, self.hparams["width"], domain=SOURCE_DOMAIN)}


def pretrain(data, out, hp: dict, extra: dict, seed=0, device="auto", compile=False, progress=True,
             resume=False, cuda_graphs: bool | None = None) -> Path:
    """Train (or resume) the backbone with hyperparameters `hp` and save <out>/backbone.pt;
    returns its path. `extra` is recorded as is (the preset, the overrides)."""
    spec = JobSpec("pretrain", SOURCE_DOMAIN, str(data), str(out), hp, seed=seed, device=device, compile=compile,
                   progress=progress, resume=resume, cuda_graphs=cuda_graphs, extra=extra)
    run_job(spec, Pretraining)
    return Path(out) / BACKBONE_FILE
