"""Jobs on SLURM through submitit: one job array per wave, polled to the end.

`slurm_executor` makes submitit's AutoExecutor for the options; `submit` sends one array of
`JobTask`s (decathlon.launch.tasks: requeued on preemption or timeout, resumed from the job
folder); `wait_for` polls them with a progress bar and names every failed job's folder and
log. The tests give `submit` and `wait_for` submitit's local executor, and the whole path a
real single-node SLURM (tests/slurm/).
"""
from __future__ import annotations

import contextlib
import io
import re
import subprocess
import time
from pathlib import Path

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError
from tqdm import tqdm

from decathlon.launch.config import LaunchError, LauncherConfig
from decathlon.launch.tasks import JobTask

POLL_SECONDS = 1.0


def slurm_executor(config: LauncherConfig, folder) -> submitit.AutoExecutor:
    """submitit's executor for SLURM, logs under `folder`/<job id>/."""
    try:
        executor = submitit.AutoExecutor(folder=Path(folder) / "%j", cluster="slurm")
    except RuntimeError as err:   # submitit looks for srun first
        raise LaunchError(f"--launcher slurm: no SLURM client here ({err})") from err
    executor.update_parameters(name="decathlon", **config.slurm_parameters())
    return executor


def submit(specs: list, executor, threads: int) -> list:
    """One job array of `specs` (JobSpec or BackboneJob); returns submitit's jobs. A refused
    submission is one LaunchError quoting what sbatch answered."""
    answer = io.StringIO()   # submitit prints sbatch's stderr: it goes into the one error line instead
    try:
        with contextlib.redirect_stderr(answer), executor.batch():
            jobs = [executor.submit(JobTask(spec, threads)) for spec in specs]
    except (FailedJobError, FailedSubmissionError, subprocess.SubprocessError, OSError) as err:
        said = " ".join((str(err) or answer.getvalue()).split())
        raise LaunchError(f"sbatch refused the jobs: {said}") from err
    return jobs


def wait_for(jobs: list, specs: list, desc: str = "jobs", progress: bool = True) -> None:
    """Wait until every job has ended; raise one LaunchError naming each failed job's folder,
    its error and its submitit log."""
    bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=not progress)
    running, failures = dict(zip(jobs, specs)), []
    while running:
        for job in [job for job in running if job.done()]:
            spec = running.pop(job)
            error = job.exception()
            if error is not None:
                failures.append(f"{spec.out} ({_last_line(error)}; log {job.paths.stderr})")
            bar.update()
        if running:
            time.sleep(POLL_SECONDS)
    bar.close()
    if failures:
        raise LaunchError(f"{len(failures)} of {len(jobs)} {desc} failed on SLURM: {'; '.join(failures)}")


def _last_line(error: Exception) -> str:
    """The task's own error: the last exception line of the traceback submitit quotes (after
    it, submitit may list its log files as "- <path>" lines), else the last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"[\w.]*(Error|Exception|Interrupt|Exit)\b[^ ]*:", line)]
    return (raised or [line for line in lines if not line.startswith("- ")] or [type(error).__name__])[-1]
