"""What a launcher hands to a worker: the backbone's job (pretraining, or evaluating a given
backbone), and the picklable task a SLURM array runs for one job.

A SLURM task may be preempted or run out of time. `JobTask` subclasses submitit's
`Checkpointable`: on the signal SLURM sends first, submitit pickles the task again
(`checkpoint()`: the same task) and requeues it; the requeued task runs the job with
resume, so it continues from the job folder's last checkpoint, and a job that had already
finished (`done`) is not run again.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import submitit
import torch

from decathlon.data import SOURCE_DOMAIN
from decathlon.engine import JobSpec, evaluate_backbone, pretrain, run_job
from decathlon.jobdir import is_done


@dataclass
class BackboneJob:
    """The backbone every job starts from, as one job: pretraining on imagenet12 into `out`,
    or, with `backbone`, evaluating that file on imagenet12 there (the ImNet column)."""
    data: str
    out: str
    hparams: dict
    extra: dict = field(default_factory=dict)
    backbone: str | None = None
    device: str = "auto"
    compile: bool = False
    progress: bool = True
    cuda_graphs: bool | None = None
    cudnn_benchmark: bool = True
    tensorboard: bool = False
    method = "pretrain"
    domain = SOURCE_DOMAIN
    seed = 0

    def __call__(self):
        if self.backbone:
            return evaluate_backbone(self.data, self.out, self.backbone, self.hparams, self.extra, self.device,
                                     self.progress)
        return pretrain(self.data, self.out, self.hparams, self.extra, 0, self.device, self.compile, self.progress,
                        resume=True, cuda_graphs=self.cuda_graphs, cudnn_benchmark=self.cudnn_benchmark,
                        tensorboard=self.tensorboard)


class JobTask(submitit.helpers.Checkpointable):
    """One job of a SLURM array: run (or resume) `spec` with `threads` torch threads;
    a finished job is skipped. Returns the job folder."""

    def __init__(self, spec, threads: int):
        self.spec, self.threads = replace(spec, progress=False), threads

    def __call__(self) -> str:
        if not is_done(self.spec.out):
            torch.set_num_threads(self.threads)
            if isinstance(self.spec, JobSpec):
                run_job(replace(self.spec, resume=True))
            else:
                self.spec()   # a BackboneJob always resumes
        return str(self.spec.out)
