"""`python -m decathlon pretrain|train` from the outside: DDP under torchrun, argument errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from decathlon.cli import main


def _tiny_args(tiny_hparams):
    args = []
    for key, value in dict(tiny_hparams, epochs=1).items():
        args += ["--hparam", f"{key}={json.dumps(value)}"]
    return args


@pytest.mark.parametrize("method, domain", [("parallel_adapters", "dtd"), ("spottune_joint", "dtd,svhn")])
def test_two_process_gloo_ddp_run(method, domain, tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "decathlon", "train", "--method", method, "--domain", domain,
               "--data", str(tiny_decathlon), "--backbone", str(tiny_backbone), "--out", str(out),
               "--device", "cpu", "--no-progress", *_tiny_args(tiny_hparams),
               "--hparam", "batch_size=8"]   # 12 of dtd's 24 training images per process: one step or more
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    final = json.loads((out / "final.json").read_text())
    manifest = json.loads((tiny_decathlon / "manifest.json").read_text())
    for evaluation in final["evaluations"]:
        val = np.load(out / evaluation["splits"]["val"]["predictions"])
        expected = manifest["domains"][evaluation["domain"]]["splits"]["val"]["num_images"]
        assert len(val["image_ids"]) == len(np.unique(val["image_ids"])) == expected  # every image once
        assert evaluation["splits"]["val"]["num_images"] == expected
    assert (out / "done").is_file()


@pytest.mark.parametrize("argv, message", [
    (["train", "--method", "mixup", "--domain", "dtd", "--out", "x"], "invalid choice: 'mixup'"),
    (["train", "--method", "finetune", "--domain", "dtd", "--out", "x", "--preset", "fast"], "invalid choice: 'fast'"),
])
def test_bad_arguments_are_refused_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_errors_a_user_can_fix_are_one_line(tiny_decathlon, tiny_backbone, tmp_path, capsys):
    base = ["train", "--method", "finetune", "--domain", "dtd", "--out", str(tmp_path / "job"),
            "--hparam", "batch_size=8"]   # cpu_demo's 64 is more than the tiny dtd's training images
    assert main([*base, "--data", str(tmp_path)]) == 2
    assert "no manifest here; prepare data first" in capsys.readouterr().err
    assert main([*base, "--data", str(tiny_decathlon), "--domain", "gtsrb"]) == 2
    assert "'gtsrb' was not prepared" in capsys.readouterr().err
    assert main([*base, "--data", str(tiny_decathlon), "--domain", "mnist"]) == 2
    assert "unknown domain 'mnist'" in capsys.readouterr().err
    assert main([*base, "--data", str(tiny_decathlon), "--domain", "dtd,svhn"]) == 2
    assert "method 'finetune' trains one domain per job" in capsys.readouterr().err
    assert main([*base, "--data", str(tiny_decathlon), "--backbone", str(tiny_backbone)]) == 2
    assert "another architecture" in capsys.readouterr().err    # cpu_demo width 0.25 vs 0.125 backbone
    assert main([*base, "--data", str(tiny_decathlon), "--backbone", str(tiny_backbone),
                 "--hparam", "widht=0.125"]) == 2
    assert "unknown hyperparameter 'widht'" in capsys.readouterr().err


def test_preset_carries_its_protocol_and_precision_is_a_recorded_override(tiny_decathlon, tiny_backbone,
                                                                          tiny_hparams, tmp_path):
    out = tmp_path / "job"
    assert main(["train", "--method", "spottune", "--domain", "dtd", "--data", str(tiny_decathlon),
                 "--backbone", str(tiny_backbone), "--out", str(out), "--preset", "spottune_paper",
                 "--precision", "bf16", "--device", "cpu", "--no-progress", "--no-cudnn-benchmark",
                 *_tiny_args(tiny_hparams)]) == 0
    final = json.loads((out / "final.json").read_text())
    assert final["spec"]["cudnn_benchmark"] is False and "cudnn_benchmark" not in final["execution"]   # CUDA only
    assert final["spec"]["protocol"] == "trainval" and set(final["splits"]) == {"test"}   # the public code's
    assert final["spec"]["extra"]["overrides"]["precision"] == "bf16"
    assert final["spec"]["extra"]["preset_protocol"] == "trainval"
    assert [e["eval_policy"] for e in final["evaluations"]] == ["sample", "argmax"]   # as published, first


def test_more_errors_a_user_can_fix_are_one_line(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, capsys,
                                                 monkeypatch):
    (tmp_path / "a-file").write_text("")
    base = ["train", "--method", "finetune", "--domain", "dtd", "--data", str(tiny_decathlon), "--backbone",
            str(tiny_backbone), "--device", "cpu", "--no-progress", *_tiny_args(tiny_hparams)]
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_backbone.read_bytes()[:5000])
    for argv, message in (
            (["--out", str(tmp_path / "a-file")], f"--out {tmp_path / 'a-file'}: is a file, expected a folder"),
            (["--out", str(tmp_path / "a-file" / "job")], f"--out {tmp_path / 'a-file' / 'job'}: cannot write there"),
            (["--out", str(tmp_path / "j1"), "--hparam", "epochs=1.5"],
             "hyperparameter 'epochs' is 1.5; expected an int"),
            (["--out", str(tmp_path / "j2"), "--hparam", "epochs=0"], "'epochs' is 0: a training job needs"),
            (["--out", str(tmp_path / "j3"), "--device", "toaster"], "--device toaster: expected auto, cpu, cuda"),
            (["--out", str(tmp_path / "j4"), "--seed", "-3"], "seed -3: expected an integer >= 0"),
            (["--out", str(tmp_path / "j5"), "--backbone", str(truncated)], f"{truncated}: a truncated or damaged"),
    ):
        assert main([*base, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert main(["pretrain", "--data", str(tiny_decathlon), "--out", str(tmp_path / "a-file"), "--device", "cpu",
                 "--no-progress", *_tiny_args(tiny_hparams)]) == 2
    assert f"--out {tmp_path / 'a-file'}: is a file" in capsys.readouterr().err

    from decathlon.checkpoints import ours as checkpoint

    def disk_full(obj, f):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    assert main([*base, "--out", str(tmp_path / "full")]) == 2
    assert capsys.readouterr().err == f"error: cannot write checkpoint {tmp_path / 'full' / 'checkpoint.pt'}: " \
                                      "No space left on device\n"


def test_nettailor_without_a_finished_teacher_names_the_job_it_needs(tiny_decathlon, tiny_backbone, tmp_path,
                                                                    capsys):
    base = ["train", "--method", "nettailor", "--domain", "dtd", "--data", str(tiny_decathlon), "--backbone",
            str(tiny_backbone), "--device", "cpu", "--no-progress", "--hparam", "width=0.125", "--hparam", "batch_size=8"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "finished finetune job of domain 'dtd', seed 0" in err and "--teacher" in err
    (tmp_path / "teacher").mkdir()
    assert main([*base, "--out", str(tmp_path / "b"), "--teacher", str(tmp_path / "teacher")]) == 2
    assert f"teacher job {tmp_path / 'teacher'}: not finished" in capsys.readouterr().err
