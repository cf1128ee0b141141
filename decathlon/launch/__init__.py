"""Launchers: how the benchmark's jobs get run, on engines that exist. `local` (processes on
the local host, several per device), `torchrun` (the jobs spread over its processes) and
`slurm` (submitit job arrays, requeued on preemption and resumed from the job folder)."""
from decathlon.launch.config import LAUNCHERS, LaunchError, LauncherConfig, default_launcher, under_torchrun
from decathlon.launch.launcher import check_launcher, launch, run_backbone
from decathlon.launch.local import default_jobs_per_device, run_jobs
from decathlon.launch.slurm import slurm_executor, submit, wait_for
from decathlon.launch.tasks import BackboneJob, JobTask

__all__ = ["BackboneJob", "JobTask", "LAUNCHERS", "LaunchError", "LauncherConfig", "check_launcher",
           "default_jobs_per_device", "default_launcher", "launch", "run_backbone", "run_jobs", "slurm_executor",
           "submit", "under_torchrun", "wait_for"]
