"""`decathlon run`, `sweep` and `select` with `--launcher slurm` end to end on a real single-node
SLURM: the backbone's job and a wave of 2 methods x 2 domains as a job array, every job done,
and the same records and predictions as the local runner's; a sweep's twelve trials as one
array, and the selection made from them."""
import json
import os
import subprocess
import sys
from pathlib import Path

from decathlon.jobdir import read_final, read_records

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--methods", "finetune,spottune", "--domains", "dtd,svhn", "--no-progress", "--device", "cpu",
        "--hparam", "width=0.125", "--hparam", "epochs=1", "--hparam", "batch_size=16", "--hparam", "lr_milestones=[1]"]
TIMINGS = {"seconds", "train_images_per_s", "eval_seconds", "trained_until"}   # wall-clock


def _run(data, out, *launcher):
    command = [sys.executable, str(ROOT / "run_decathlon.py"), "--data", str(data), "--out", str(out),
               "--results", str(out.parent / f"{out.name}-results"), *TINY, *launcher]
    done = subprocess.run(command, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return {str(p.parent.relative_to(out)): p.parent for p in sorted(out.glob("jobs/*/*/*/*/done"))}


def _outcome(job: Path) -> dict:
    """What a job learned and predicted, without its timings."""
    import numpy as np

    final = read_final(job)
    return {"records": [{k: v for k, v in r.items() if k not in TIMINGS} for r in read_records(job)],
            "splits": json.dumps(final["splits"], sort_keys=True), "backbone": final["backbone"]["sha256"],
            "predictions": {p.name: np.load(p)["labels"].tolist() for p in sorted(job.glob("predictions_*.npz"))}}


def test_a_run_through_slurm_gives_the_local_runners_records(slurm_cluster, tiny_decathlon, tmp_path):
    slurm = _run(tiny_decathlon, tmp_path / "slurm", "--launcher", "slurm", "--slurm-cpus", "1", "--slurm-time", "10")
    local = _run(tiny_decathlon, tmp_path / "local", "--launcher", "local", "--jobs-per-device", "1")
    assert len(slurm) == 4 and slurm.keys() == local.keys()
    for name in slurm:
        assert _outcome(slurm[name]) == _outcome(local[name]), name
    # every job ran as a SLURM task: the backbone's job, then one array of four
    logs = sorted(p.parent.name for p in (tmp_path / "slurm" / "submitit").glob("*/*_log.out"))
    assert len(logs) == 5 and sum("_" in name for name in logs) == 4, logs
    assert not list((tmp_path / "local").glob("submitit"))


def test_the_sweep_of_2_methods_2_domains_3_trials_runs_through_slurm_and_select_reports_it(
        slurm_cluster, tiny_decathlon, tmp_path):
    """The sweep of tests/decathlon/cli/test_sweep.py (finetune and spottune_global on dtd and
    svhn, 3 trials) submitted as SLURM arrays, then `decathlon select` on the finished sweep (its
    four final jobs run locally: the SLURM path is the sweep's)."""
    out, slurm = tmp_path / "sweep", ["--launcher", "slurm", "--slurm-cpus", "1", "--slurm-time", "10"]
    tiny = ["--hparam", "width=0.125", "--hparam", "epochs=1", "--hparam", "batch_size=16", "--hparam",
            "eval_batch_size=64", "--hparam", "lr_milestones=[1]", "--device", "cpu", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    sweep = subprocess.run([sys.executable, "-m", "decathlon", "sweep", "--data", str(tiny_decathlon), "--out",
                            str(out), "--methods", "finetune,spottune_global", "--domains", "dtd,svhn", "--trials",
                            "3", *tiny, *slurm], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    trials = sorted(p.parent for p in out.glob("jobs/*/*/*/seed0/done"))
    assert len(trials) == 2 * 2 * 3
    assert all([r["epoch"] for r in read_records(job)] == [1] for job in trials)
    # the backbone's job, then one array of the twelve trials
    logs = [p.parent.name for p in (out / "submitit").glob("*/*_log.out")]
    assert len(logs) == 13 and sum("_" in name for name in logs) == 12, logs
    select = subprocess.run([sys.executable, "-m", "decathlon", "select", "--sweep", str(out), "--results",
                             str(tmp_path / "results"), "--device", "cpu", "--no-progress"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert select.returncode == 0, select.stderr[-3000:]
    assert len(list((out / "selected").glob("jobs/*/*/*/seed0/done"))) == 4
    assert "selected on val over 3 trials" in (tmp_path / "results" / "leaderboard.md").read_text()
