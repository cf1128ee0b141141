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
               "--device", "cpu", "--no-progress", *_tiny_args(tiny_hparams)]
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
    base = ["train", "--method", "finetune", "--domain", "dtd", "--out", str(tmp_path / "job")]
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
