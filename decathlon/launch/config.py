"""What a launcher needs to know: which engine runs the jobs, and its options.

`local` runs the jobs in this process's machine, `jobs_per_device` at a time; `torchrun`
spreads them over the processes torchrun started; `slurm` submits them to SLURM through
submitit, one job array per wave. The default is `torchrun` inside a torchrun process and
`local` elsewhere, as the runner behaved before there was a choice.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

LAUNCHERS = ("local", "torchrun", "slurm")


class LaunchError(ValueError):
    """A launch that cannot go on: refused options, a refused submission, failed jobs.
    A ValueError, so the command line's guard prints it as one line."""


def under_torchrun() -> bool:
    """Whether torchrun started this process (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def default_launcher() -> str:
    return "torchrun" if under_torchrun() else "local"


@dataclass
class LauncherConfig:
    name: str = "local"
    jobs_per_device: int | None = None   # local/torchrun; None: decathlon.launch.local.default_jobs_per_device
    threads_per_job: int | None = None   # torch CPU threads per job; None: shared out (local), --slurm-cpus (slurm)
    # slurm (submitit's AutoExecutor parameters)
    partition: str | None = None         # None: the cluster's default partition
    time: int = 120                      # minutes per task; a task that runs out is requeued and resumes
    gpus_per_job: int = 0
    cpus_per_job: int | None = None      # None: the cluster's default (one CPU)
    mem_gb: float | None = None          # None: the cluster's default
    array_parallelism: int = 256         # tasks of one array running at once
    folder: str | None = None            # submitit's logs and pickles; None: <run folder>/submitit
    sbatch_options: dict = field(default_factory=dict)   # any other sbatch option, e.g. {"account": "x"}

    def __post_init__(self):
        if self.name not in LAUNCHERS:
            raise LaunchError(f"launcher {self.name!r}: expected one of {', '.join(LAUNCHERS)}")
        for name in ("jobs_per_device", "threads_per_job", "cpus_per_job", "time", "array_parallelism"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise LaunchError(f"launcher option {name} is {value}: expected at least 1")
        if self.gpus_per_job < 0 or (self.mem_gb is not None and self.mem_gb <= 0):
            raise LaunchError(f"launcher options gpus_per_job={self.gpus_per_job}, mem_gb={self.mem_gb}: "
                              f"expected gpus_per_job >= 0 and mem_gb > 0")

    def slurm_parameters(self) -> dict:
        """submitit's AutoExecutor.update_parameters keywords for these options."""
        parameters = {"timeout_min": self.time, "slurm_array_parallelism": self.array_parallelism}
        for key, value in (("slurm_partition", self.partition), ("gpus_per_node", self.gpus_per_job or None),
                           ("cpus_per_task", self.cpus_per_job), ("mem_gb", self.mem_gb)):
            if value is not None:
                parameters[key] = value
        if self.sbatch_options:
            parameters["slurm_additional_parameters"] = dict(self.sbatch_options)
        return parameters
