"""The SLURM launcher's tasks through submitit's local executor: two jobs to completion, a
preempted job requeued and resumed from its folder, a failed task named with its log."""
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
import submitit
from submitit.core.utils import DelayedSubmission

from decathlon.benchmark import hparams
from decathlon.engine import JobSpec
from decathlon.jobdir import RECORD_FILE, is_done, read_records
from decathlon.launch import JobTask, LaunchError, submit, wait_for


def _spec(data, backbone, tiny_hparams, out, domain="dtd", epochs=1):
    hp = hparams("finetune", domain, "cpu_demo", dict(tiny_hparams, epochs=epochs, lr_milestones=[epochs]))
    return JobSpec("finetune", domain, str(data), str(out), hp, backbone=str(backbone), device="cpu",
                   progress=False, resume=True, data_parallel=False)


def _executor(folder):
    executor = submitit.AutoExecutor(folder=Path(folder) / "%j", cluster="local")
    executor.update_parameters(timeout_min=60)   # a signal within the first 48 minutes is a preemption
    return executor


def test_two_jobs_run_to_completion_as_submitit_tasks(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    specs = [_spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path / domain, domain) for domain in ("dtd", "svhn")]
    jobs = submit(specs, _executor(tmp_path / "logs"), threads=1)
    wait_for(jobs, specs, progress=False)
    assert all(is_done(spec.out) for spec in specs)
    assert [job.result() for job in jobs] == [spec.out for spec in specs]
    assert all([r["epoch"] for r in read_records(spec.out)] == [1] for spec in specs)
    # a task of a finished job (a requeued one, or the same run submitted again) skips it
    before = [(Path(spec.out) / RECORD_FILE).stat().st_mtime_ns for spec in specs]
    assert [JobTask(spec, threads=1)() for spec in specs] == [spec.out for spec in specs]
    assert [(Path(spec.out) / RECORD_FILE).stat().st_mtime_ns for spec in specs] == before


def test_a_task_checkpoints_as_itself():
    task = JobTask(JobSpec("finetune", "dtd", "data", "out", {}), threads=2)
    delayed = task.checkpoint()
    assert isinstance(delayed, DelayedSubmission) and delayed.function is task
    assert task.spec.progress is False and task.threads == 2


def _children(pid: int) -> list:
    """The processes whose parent is `pid` (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_a_preempted_task_is_requeued_and_resumes_from_its_job_folder(tiny_decathlon, tiny_backbone, tiny_hparams,
                                                                      tmp_path):
    epochs = 8
    spec = _spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path / "job", epochs=epochs)
    [job] = submit([spec], _executor(tmp_path / "logs"), threads=1)
    deadline = time.monotonic() + 120
    while not read_records(spec.out) and time.monotonic() < deadline:
        time.sleep(0.05)
    first_epoch = (Path(spec.out) / RECORD_FILE).read_text().splitlines()[0]
    [task] = _children(job._process.pid)   # the controller's one task: SLURM signals the task itself
    os.kill(task, signal.SIGUSR2)          # what SLURM sends before preempting or timing out
    wait_for([job], [spec], progress=False)
    log = job.stdout() + job.stderr()
    assert "this job is preempted" in log and "Requeued job" in log, log[-3000:]
    lines = (Path(spec.out) / RECORD_FILE).read_text().splitlines()
    assert [r["epoch"] for r in read_records(spec.out)] == list(range(1, epochs + 1))
    assert lines[0] == first_epoch, "epoch 1 was trained again instead of resumed"
    assert is_done(spec.out)


def test_a_failed_task_names_its_job_folder_and_log(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    good = _spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path / "good")
    bad = replace(good, data=str(tmp_path / "no-data"), out=str(tmp_path / "bad"))
    jobs = submit([bad], _executor(tmp_path / "logs"), threads=1)
    with pytest.raises(LaunchError) as raised:
        wait_for(jobs, [bad], progress=False)
    message = str(raised.value)
    assert message.startswith("1 of 1 jobs failed on SLURM: ") and "\n" not in message
    assert f"{bad.out} (" in message and f"log {jobs[0].paths.stderr})" in message
    assert "no-data" in message   # the task's own error, its last line
