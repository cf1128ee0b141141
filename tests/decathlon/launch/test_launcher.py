"""Choosing and checking a launcher: the options, the torchrun check, and a submission that
sbatch refuses (a fake sbatch first on PATH), through `launch` and through `decathlon run`."""
import os

import pytest

from decathlon.cli.launcher_args import add_launcher_arguments, check_launcher_arguments, launcher_config
from decathlon.cli.run import main as run_main, parse_args
from decathlon.engine import JobSpec
from decathlon.launch import LaunchError, LauncherConfig, launch

REFUSAL = "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"


@pytest.fixture
def refusing_sbatch(tmp_path, monkeypatch):
    """A SLURM client whose sbatch refuses every submission as a real one does (and an srun,
    which submitit looks for to know it is on SLURM)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\necho '{REFUSAL}' >&2\nexit 1\n")
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for name in ("sbatch", "srun"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def test_a_refused_submission_says_what_sbatch_answered(refusing_sbatch, tmp_path, capsys):
    spec = JobSpec("finetune", "dtd", "data", str(tmp_path / "job"), {})
    with pytest.raises(LaunchError) as raised:
        launch([spec], LauncherConfig("slurm", folder=str(tmp_path / "logs"), sbatch_options={"account": "nobody"}))
    assert str(raised.value) == f"sbatch refused the jobs: {REFUSAL}"
    assert capsys.readouterr().err == ""   # submitit's own printout of sbatch's answer is kept out


def test_decathlon_run_with_a_refused_submission_is_one_line(refusing_sbatch, tiny_decathlon, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_main(["--data", str(tiny_decathlon), "--methods", "finetune", "--domains", "dtd", "--device", "cpu",
                     "--no-progress", "--hparam", "width=0.125", "--out", str(out), "--launcher", "slurm",
                     "--slurm-partition", "gpu", "--slurm-option", "account=nobody"]) == 2
    assert capsys.readouterr().err == f"error: sbatch refused the jobs: {REFUSAL}\n"
    assert not list(out.glob("pretrain/*/record.jsonl"))   # nothing ran


def test_torchrun_is_refused_outside_torchrun_and_local_inside_it(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(LaunchError, match="RANK and WORLD_SIZE are not set, so torchrun did not start this process"):
        launch([], LauncherConfig("torchrun"))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("local", "slurm"):
        with pytest.raises(LaunchError, match=f"--launcher {name}: this is process 1 of 2 under torchrun"):
            launch([], LauncherConfig(name))


def test_slurm_options_become_submitit_parameters():
    args = parse_args(["--launcher", "slurm", "--slurm-partition", "gpu", "--slurm-time", "30", "--slurm-gpus", "1",
                       "--slurm-cpus", "8", "--slurm-mem-gb", "32", "--slurm-array-parallelism", "4",
                       "--slurm-folder", "logs", "--slurm-option", "account=proj", "--slurm-option", "mail-type=END"])
    config = launcher_config(args)
    assert (config.name, config.folder) == ("slurm", "logs")
    assert config.slurm_parameters() == {
        "timeout_min": 30, "slurm_array_parallelism": 4, "slurm_partition": "gpu", "gpus_per_node": 1,
        "cpus_per_task": 8, "mem_gb": 32.0, "slurm_additional_parameters": {"account": "proj", "mail_type": "END"}}
    assert LauncherConfig("slurm").slurm_parameters() == {"timeout_min": 120, "slurm_array_parallelism": 256}


def test_bad_launcher_arguments_are_refused(capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_launcher_arguments(parser)
    for argv, message in ((["--launcher", "kubernetes"], "invalid choice: 'kubernetes'"),
                          (["--slurm-time", "0"], "--slurm-time must be at least 1"),
                          (["--slurm-cpus", "0"], "--slurm-cpus must be at least 1"),
                          (["--slurm-gpus", "-1"], "--slurm-gpus must be 0 or more"),
                          (["--slurm-mem-gb", "0"], "--slurm-mem-gb must be more than 0"),
                          (["--slurm-option", "exclusive"], "--slurm-option exclusive: expected KEY=VALUE"),
                          (["--threads-per-job", "0"], "--threads-per-job must be at least 1")):
        with pytest.raises(SystemExit):
            check_launcher_arguments(parser.parse_args(argv), parser)
        assert message in capsys.readouterr().err
    with pytest.raises(LaunchError, match="launcher 'pbs': expected one of local, torchrun, slurm"):
        LauncherConfig("pbs")
