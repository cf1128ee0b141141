"""`decathlon run` (= run_decathlon.py) end to end on a tiny synthetic decathlon: kill, rerun, collect,
torchrun; and the same options through both doors."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from decathlon.cli import build_parser, main as decathlon_main
from decathlon.cli.run import main as run_main, parse_args
from decathlon.scoring import validate_results

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--methods", "finetune,spottune", "--domains", "dtd,svhn", "--no-progress",
        "--hparam", "width=0.125", "--hparam", "epochs=3", "--hparam", "batch_size=16",
        "--hparam", "lr_milestones=[2]", "--device", "cpu"]


def _command(data, out, results, *launcher):
    return [sys.executable, *launcher, str(ROOT / "run_decathlon.py"), "--data", str(data), "--out", str(out),
            "--results", str(results), *TINY]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1")


def _done_jobs(out: Path) -> dict:
    return {p.parent: p.parent.joinpath("final.json").stat().st_mtime_ns for p in out.glob("jobs/*/*/*/*/done")}


def test_killed_run_resumes_skips_finished_jobs_and_collects(tiny_decathlon, tmp_path):
    out, results = tmp_path / "run", tmp_path / "results"
    process = subprocess.Popen(_command(tiny_decathlon, out, results), env=_env(), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not _done_jobs(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = _done_jobs(out)
    assert finished_before, "the run was killed before any job finished"
    assert len(finished_before) < 4, "the run finished before it could be killed"

    rerun = subprocess.run(_command(tiny_decathlon, out, results), env=_env(), cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    finished = _done_jobs(out)
    assert len(finished) == 4
    assert all(finished[job] == mtime for job, mtime in finished_before.items()), "a finished job was rerun"
    for job in finished:  # resumed jobs have one record line per epoch, none repeated
        epochs = [json.loads(line)["epoch"] for line in (job / "record.jsonl").read_text().splitlines()]
        assert epochs == [1, 2, 3]

    board = (results / "leaderboard.md").read_text()
    options = "batch_size=16, epochs=3, lr_milestones=[2], width=0.125"   # every override is shown
    assert "SYNTHETIC" in board and f"| finetune ({options}) | 1 |" in board
    # one SpotTune training, evaluated with both test-time policies
    assert f"| spottune (eval argmax; {options}) | 1 |" in board and f"| spottune (eval sample; {options}) | 1 |" in board
    assert "None: every job folder has finished" in board
    assert board in rerun.stdout  # the summary table printed at the end
    for name in ("accuracy", "policy", "s_vs_par", "curves"):
        assert any(p.stat().st_size > 0 for p in (results / "plots").glob(f"{name}*.png")), name
    submission = next((results / "submissions").rglob("results_spottune*_seed0.json"))
    checked = validate_results(submission, require_full=False)
    assert len(checked.image_ids) == sum(json.loads((tiny_decathlon / "manifest.json").read_text())
                                         ["domains"][d]["splits"]["test"]["num_images"]
                                         for d in ("imagenet12", "dtd", "svhn"))

    from decathlon.cli import main
    assert main(["collect", str(out), "--out", str(tmp_path / "again")]) == 0
    for name in ("leaderboard.md", "scores.csv", "leaderboard.tex"):
        again = (tmp_path / "again" / name).read_text()
        assert again == (results / name).read_text().replace(str(results), str(tmp_path / "again"))


def test_torchrun_spreads_jobs_over_two_processes(tiny_decathlon, tmp_path):
    out, results = tmp_path / "run", tmp_path / "results"
    command = _command(tiny_decathlon, out, results, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node=2")
    done = subprocess.run([*command, "--no-cudnn-benchmark"], env=_env(), cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_done_jobs(out)) == 4
    finals = [json.loads(p.read_text()) for p in out.glob("**/final.json")]
    assert len(finals) == 5 and all(f["spec"]["cudnn_benchmark"] is False for f in finals)   # pretraining too
    assert (results / "leaderboard.md").is_file()
    assert done.stdout.count("## Incomplete jobs") == 1  # only rank 0 reports


def _predictions(out: Path) -> dict:
    """Every job's prediction files, by job folder relative to the run."""
    import numpy as np

    return {(str(path.parent.relative_to(out)), path.name): np.load(path)["labels"].tolist()
            for path in sorted(out.glob("jobs/*/*/*/*/predictions_*.npz"))}


def test_two_jobs_per_device_give_the_results_of_one(tiny_decathlon, tmp_path):
    """Each job is a function of its seed: running two at once in separate processes (one
    thread each, as with one at a time under OMP_NUM_THREADS=1) changes nothing."""
    runs = {}
    for jobs in (1, 2):
        out, results = tmp_path / f"run{jobs}", tmp_path / f"results{jobs}"
        command = [*_command(tiny_decathlon, out, results), "--jobs-per-device", str(jobs)]
        done = subprocess.run(command, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert len(_done_jobs(out)) == 4
        runs[jobs] = out
    one, two = _predictions(runs[1]), _predictions(runs[2])
    assert len(one) == 12 and one == two   # 4 jobs x val/test, spottune also sampled
    measured = ("train_images_per_s", "device_hours", "peak_memory_mib")   # timed on the machine: may differ
    board = {jobs: (lambda s: s[~s["metric"].isin(measured)])(pd.read_csv(tmp_path / f"results{jobs}" / "scores.csv"))
             for jobs in (1, 2)}
    assert len(board[1]) > 0 and board[1].equals(board[2])


def test_bad_arguments_are_refused(capsys):
    for argv, message in ((["--methods", "mixup"], "unknown method 'mixup'"),
                          (["--domains", "imagenet12"], "imagenet12 is the source domain"),
                          (["--domains", "mnist"], "unknown domain 'mnist'"),
                          (["--seeds", "0"], "--seeds must be at least 1"),
                          (["--jobs-per-device", "0"], "--jobs-per-device must be at least 1")):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert message in capsys.readouterr().err
    assert run_main(["--data", "/nonexistent", "--no-progress"]) == 2
    assert "no manifest here" in capsys.readouterr().err


def test_a_second_run_into_a_held_run_folder_and_unusable_outputs_are_refused(tiny_decathlon, tmp_path, capsys):
    from decathlon.files import folder_lock

    base = ["--data", str(tiny_decathlon), *TINY]
    out, a_file = tmp_path / "run", tmp_path / "a-file"
    a_file.write_text("")
    with folder_lock(out, "run folder"):
        assert run_main([*base, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: run folder {out} is in use by pid ") and err.count("\n") == 1
    assert not (out / "pretrain").exists()
    for argv, message in ((["--out", str(a_file)], f"--out {a_file}: is a file, expected a folder"),
                          (["--out", str(tmp_path / "r"), "--results", str(a_file)],
                           f"--results {a_file}: is a file, expected a folder")):
        assert run_main([*base, *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r" / "pretrain").exists()   # --results is checked before any training


def test_both_doors_take_the_same_options_and_check_them_the_same(capsys):
    """`python run_decathlon.py` is a shim of `decathlon run`."""
    def options(text):
        return sorted(word for word in text.split() if word.startswith("--"))

    shim = subprocess.run([sys.executable, str(ROOT / "run_decathlon.py"), "--help"], capture_output=True, text=True,
                          check=True).stdout
    command = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert options(shim) == options(command) and "--jobs-per-device" in options(shim)
    with pytest.raises(SystemExit):
        decathlon_main(["run", "--methods", "mixup"])
    assert "unknown method 'mixup'" in capsys.readouterr().err


def test_the_default_methods_are_the_resnet26_board_and_all_means_every_method_of_the_backbone():
    from decathlon.methods import BOARD_METHODS, METHODS

    assert parse_args([]).methods == BOARD_METHODS   # the default make run: no parameter-efficient jobs added
    on_resnet26 = parse_args(["--methods", "all"]).methods
    assert {"bitfit", "lora"} <= set(on_resnet26) and not {"vpt", "adaptformer"} & set(on_resnet26)
    vit = ["--backbone-arch", "timm:vit_tiny_patch16_224"]
    on_vit = parse_args(vit).methods
    assert on_vit == parse_args([*vit, "--methods", "all"]).methods
    assert {"finetune", "bn_adapt", "bitfit", "lora", "vpt", "adaptformer", "spottune"} <= set(on_vit)
    assert not {"series_adapters", "piggyback", "nettailor", "spottune_joint"} & set(on_vit)
    assert set(on_vit) | set(BOARD_METHODS) | {"vpt", "adaptformer"} == set(METHODS) | {"vpt", "adaptformer"}
