"""`decathlon sweep` and `decathlon select` end to end on the tiny synthetic decathlon: a sweep
killed halfway and relaunched runs no trial twice; select counts only the sweep's own trials,
runs the choices and writes tables that say how their rows were selected."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from decathlon.cli import main

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--hparam", "width=0.125", "--hparam", "epochs=1", "--hparam", "batch_size=16", "--hparam",
        "eval_batch_size=64", "--hparam", "lr_milestones=[1]", "--device", "cpu", "--no-progress"]
METHODS, DOMAINS, TRIALS = ("finetune", "spottune_global"), ("dtd", "svhn"), 2


def _sweep_command(data, out, backbone):
    return [sys.executable, "-m", "decathlon", "sweep", "--data", str(data), "--out", str(out), "--backbone",
            str(backbone), "--methods", ",".join(METHODS), "--domains", ",".join(DOMAINS), "--trials", str(TRIALS),
            *TINY]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1")


def _done_trials(out: Path) -> dict:
    return {p.parent: p.parent.joinpath("final.json").stat().st_mtime_ns for p in out.glob("jobs/*/*/*/seed0/done")}


def test_a_killed_sweep_resumes_without_rerunning_a_trial_and_select_reports_the_choice(tiny_decathlon, tiny_backbone,
                                                                                       tmp_path, capsys):
    out, results = tmp_path / "sweep", tmp_path / "results"
    process = subprocess.Popen(_sweep_command(tiny_decathlon, out, tiny_backbone), env=_env(), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_done_trials(out)) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = _done_trials(out)
    assert 0 < len(finished_before) < len(METHODS) * len(DOMAINS) * TRIALS, \
        f"the sweep was not killed halfway: {process.stderr.read().decode()[-2000:]}"

    assert main(["select", "--sweep", str(out), "--no-progress", "--device", "cpu"]) == 2   # unfinished: refused
    assert "trial job(s) unfinished" in capsys.readouterr().err
    relaunch = subprocess.run(_sweep_command(tiny_decathlon, out, tiny_backbone), env=_env(), cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
    assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    finished = _done_trials(out)
    assert len(finished) == len(METHODS) * len(DOMAINS) * TRIALS
    assert all(finished[job] == mtime for job, mtime in finished_before.items()), "a finished trial was rerun"
    for job in finished:   # one record line per epoch, none repeated
        assert [json.loads(line)["epoch"] for line in (job / "record.jsonl").read_text().splitlines()] == [1]
    # a finished job of settings this sweep did not draw, copied into its folder
    some = sorted(finished)[0]
    foreign = some.parent.parent / "lr=0.5_weight_decay=0.1" / "seed0"
    shutil.copytree(some, foreign)

    select = subprocess.run([sys.executable, "-m", "decathlon", "select", "--sweep", str(out), "--results",
                             str(results), "--device", "cpu", "--no-progress"], env=_env(), cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert select.returncode == 0, select.stderr[-3000:]
    assert f"ignored {foreign}: not a trial of this sweep" in select.stdout
    selection = json.loads((out / "selection.json").read_text())
    assert len(selection["choices"]) == len(METHODS) * len(DOMAINS)
    for choice in selection["choices"]:
        assert choice["trials"] == TRIALS and str(foreign.parent) not in {c["folder"] for c in choice["candidates"]}
        best = max(choice["candidates"], key=lambda c: (c["val_accuracy"], -c["trial"]))
        assert (choice["trial"], choice["val_accuracy"]) == (best["trial"], best["val_accuracy"])
        # cpu_demo's own protocol is train: the chosen settings' final job repeats the trial, same val accuracy
        final = next((out / "selected" / "jobs").glob(f"*/{choice['method']}/{choice['domain']}/seed0"))
        record = json.loads((final / "final.json").read_text())
        assert record["spec"]["extra"]["selection"]["trials"] == TRIALS
        assert record["splits"]["val"]["accuracy"] == choice["val_accuracy"]
    board = (results / "leaderboard.md").read_text()
    assert "SYNTHETIC" in board and "selected on val over N trials" in board
    assert "| finetune (selected on val over 2 trials, " in board
    assert "| spottune_global (eval argmax; selected on val over 2 trials, " in board
    assert "| finetune |" not in board   # no row of the preset's own settings pooled in


def test_bad_sweep_input_is_one_line(tmp_path, capsys):
    assert main(["select", "--sweep", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "sweep.json: not found" in err and len(err.strip().splitlines()) == 1
    try:
        main(["sweep", "--methods", "nettailor", "--out", str(tmp_path / "s")])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "'nettailor' cannot be swept" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["select", "--sweep", str(tmp_path), "--out", str(tmp_path / "file"),
                 "--results", str(tmp_path / "results")]) == 2
    assert capsys.readouterr().err == f"error: --out {tmp_path / 'file'}: is a file, expected a folder\n"
    (tmp_path / "sweep.json").write_text("{not json")
    assert main(["select", "--sweep", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "sweep.json" in err and len(err.strip().splitlines()) == 1
