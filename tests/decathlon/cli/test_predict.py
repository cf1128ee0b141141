"""`decathlon assemble` and `decathlon predict`: one model file, every domain's predictions as
the evaluation server's results.zip, identical across a fresh process."""
import json
import subprocess
import sys

import numpy as np
import pytest

from decathlon.benchmark import hparams, joint_hparams
from decathlon.cli import main
from decathlon.engine import JobSpec, run_job
from decathlon.jobdir import MODEL_FILE
from decathlon.scoring import read_results, validate_results


@pytest.fixture(scope="module")
def joint_job(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path_factory):
    out = tmp_path_factory.mktemp("joint")
    hp = joint_hparams("spottune_joint", ["dtd", "svhn"], "cpu_demo", dict(tiny_hparams, epochs=1))
    final = run_job(JobSpec("spottune_joint", "dtd+svhn", str(tiny_decathlon), str(out), hp,
                            backbone=str(tiny_backbone), device="cpu", progress=False, domains=("dtd", "svhn")))
    return out, final


def _by_id(path):
    return {entry["image_id"]: entry["category_id"] for entry in read_results(path)}


def _job_predictions(folder, files):
    """{image_id: category_id} of a job's saved test predictions."""
    from decathlon.data import domain_of_id
    found = {}
    for file in files:
        saved = np.load(folder / file)
        for image_id, label in zip(saved["image_ids"].tolist(), saved["labels"].tolist()):
            found[image_id] = domain_of_id(image_id).category_id_of(label)
    return found


def test_predict_writes_a_submission_the_server_would_accept_and_a_fresh_process_agrees(
        joint_job, tiny_decathlon, tmp_path, capsys):
    folder, final = joint_job
    out = tmp_path / "results.zip"
    assert main(["predict", "--model", str(folder / MODEL_FILE), "--data", str(tiny_decathlon), "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "3 domain(s)" in printed and "S: n/a" in printed   # imagenet12 by the backbone, SYNTHETIC data
    checked = validate_results(out, require_full=False)
    assert {"imagenet12", "dtd", "svhn"} == set(checked.coverage.index[checked.coverage["submitted"] > 0])
    argmax_files = [e["splits"]["test"]["predictions"] for e in final["evaluations"] if e["eval_policy"] == "argmax"]
    job = _job_predictions(folder, argmax_files)
    assert {i: c for i, c in _by_id(out).items() if i in job} == job   # the job's own predictions

    again = tmp_path / "again.zip"
    done = subprocess.run([sys.executable, "-m", "decathlon", "predict", "--model", str(folder / MODEL_FILE),
                           "--data", str(tiny_decathlon), "--out", str(again), "--device", "cpu", "--no-progress"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _by_id(again) == _by_id(out)


def test_sampled_decisions_are_reproducible_and_s_needs_a_baseline(joint_job, tiny_decathlon, tmp_path, capsys):
    folder, _ = joint_job
    runs = []
    for name in ("a.json", "b.json"):
        assert main(["predict", "--model", str(folder / MODEL_FILE), "--data", str(tiny_decathlon), "--out",
                     str(tmp_path / name), "--policy", "sample", "--seed", "3", "--device", "cpu",
                     "--no-progress"]) == 0
        runs.append(_by_id(tmp_path / name))
    assert runs[0] == runs[1]
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"dtd": 0.5, "svhn": 0.5, "imagenet12": 0.5}))
    capsys.readouterr()
    assert main(["predict", "--model", str(folder / MODEL_FILE), "--data", str(tiny_decathlon), "--out",
                 str(tmp_path / "c.json"), "--baseline-errors", str(baseline), "--device", "cpu",
                 "--no-progress"]) == 0
    assert "S = " in capsys.readouterr().out


def test_assembled_per_domain_jobs_predict_what_each_job_predicted(tiny_decathlon, tiny_backbone, tiny_hparams,
                                                                   tmp_path, capsys):
    jobs = []
    for domain in ("dtd", "svhn"):
        hp = hparams("spottune", domain, "cpu_demo", dict(tiny_hparams, epochs=1))
        jobs.append(tmp_path / domain)
        run_job(JobSpec("spottune", domain, str(tiny_decathlon), str(jobs[-1]), hp, backbone=str(tiny_backbone),
                        device="cpu", progress=False))
    model = tmp_path / "model.pt"
    assert main(["assemble", *map(str, jobs), "--out", str(model)]) == 0
    assert main(["predict", "--model", str(model), "--data", str(tiny_decathlon), "--out", str(tmp_path / "r.zip"),
                 "--device", "cpu", "--no-progress"]) == 0
    predicted = _by_id(tmp_path / "r.zip")
    for job in jobs:
        own = _job_predictions(job, ["predictions_test.npz"])
        assert {i: predicted[i] for i in own} == own
    assert main(["assemble", str(jobs[0]), str(jobs[0]), "--out", str(tmp_path / "x.pt")]) == 2
    assert "a second job for domain 'dtd'" in capsys.readouterr().err


def test_bad_inputs_exit_2_with_one_line(joint_job, tiny_decathlon, tmp_path, capsys):
    folder, _ = joint_job
    (tmp_path / "bad.pt").write_bytes(b"junk")
    assert main(["predict", "--model", str(tmp_path / "bad.pt"), "--data", str(tiny_decathlon), "--out",
                 str(tmp_path / "r.zip"), "--no-progress"]) == 2
    assert "cannot read a SpotTune model file" in capsys.readouterr().err
    assert main(["predict", "--model", str(folder / MODEL_FILE), "--data", str(tmp_path), "--out",
                 str(tmp_path / "r.zip"), "--no-progress"]) == 2
    assert "no manifest here" in capsys.readouterr().err
    assert not (tmp_path / "r.zip").exists()


def _tiny_model(path, classes):
    """A model file of one untrained dtd domain with `classes` classes, at a tiny width."""
    from decathlon.checkpoints import save_atomic
    from decathlon.models import SpotTuneNet, resnet26

    net = SpotTuneNet(resnet26(12, 0.125), "per_domain")
    net.add_domain("dtd", classes)
    save_atomic(net.checkpoint(method="spottune", augmentation="spottune"), path)
    return path


@pytest.mark.parametrize("target", ["folder", "under_a_file"])
def test_an_unusable_out_is_refused_in_one_line_before_the_model_is_read(target, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    out = tmp_path if target == "folder" else tmp_path / "file" / "results.zip"
    assert main(["predict", "--model", str(tmp_path / "absent.pt"), "--data", str(tmp_path), "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"decathlon predict: error: --out {out}") and err.count("\n") == 1


@pytest.mark.parametrize("damage", ["shape", "type", "no_arch"])
def test_a_model_file_whose_content_does_not_fit_its_arch_is_one_line(damage, tmp_path, capsys):
    import torch

    content = torch.load(_tiny_model(tmp_path / "model.pt", 5), weights_only=True)
    if damage == "shape":
        content["domains"]["dtd"]["classifier.weight"] = torch.zeros(3, 3)
    elif damage == "type":
        content["domains"]["dtd"] = "not a state"
    else:
        del content["arch"]
    torch.save(content, tmp_path / "model.pt")
    assert main(["predict", "--model", str(tmp_path / "model.pt"), "--data", str(tmp_path), "--out",
                 str(tmp_path / "r.zip"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"decathlon predict: error: {tmp_path / 'model.pt'}: not a complete SpotTune model file")
    assert err.count("\n") == 1


def test_a_domain_with_another_number_of_classes_is_refused(tiny_decathlon, tmp_path, capsys):
    from decathlon.data import read_manifest

    prepared = read_manifest(tiny_decathlon)["domains"]["dtd"]["num_classes"]
    model = _tiny_model(tmp_path / "model.pt", prepared + 1)
    assert main(["predict", "--model", str(model), "--data", str(tiny_decathlon), "--out", str(tmp_path / "r.zip"),
                 "--device", "cpu", "--no-progress"]) == 2
    assert f"domain 'dtd': the model predicts {prepared + 1} classes" in capsys.readouterr().err
    assert not (tmp_path / "r.zip").exists()


@pytest.mark.parametrize("recorded, used", [(None, "half_even"), ("half_away", "half_away")])
def test_predict_cuts_the_test_view_with_the_models_crop_rounding(recorded, used, tiny_decathlon, tmp_path,
                                                                  monkeypatch):
    """A paper-preset model (Python 2 rounding) is evaluated on the view it was trained for."""
    from decathlon.inference import predict as predict_module
    from decathlon.models import SpotTuneNet, resnet26
    from decathlon.data import read_manifest

    net = SpotTuneNet(resnet26(12, 0.125), "per_domain")
    net.add_domain("dtd", read_manifest(tiny_decathlon)["domains"]["dtd"]["num_classes"])
    net.info = {"augmentation": "spottune", **({"crop_rounding": recorded} if recorded else {})}
    seen = []
    real_loader = predict_module.ShardLoader
    monkeypatch.setattr(predict_module, "ShardLoader",
                        lambda *args, **kwargs: seen.append(kwargs["crop_rounding"]) or real_loader(*args, **kwargs))
    predict_module.predict_model(net, tiny_decathlon, "test", "argmax", progress=False, with_backbone=False)
    assert seen == [used]


def test_assembled_models_record_their_jobs_crop_rounding(tmp_path):
    from decathlon.inference import model_info
    from decathlon.checkpoints import CheckpointError

    def job(name, rounding):
        folder = tmp_path / name
        folder.mkdir()
        hp = {"augmentation": "spottune", **({"crop_rounding": rounding} if rounding else {})}
        (folder / "final.json").write_text(json.dumps({"spec": {"method": "spottune", "hparams": hp}}))
        return folder

    assert model_info([job("a", "half_away"), job("b", "half_away")])["crop_rounding"] == "half_away"
    assert model_info([job("old", None)])["crop_rounding"] == "half_even"   # jobs made before the option
    imported = tmp_path / "imported"
    imported.mkdir()
    assert model_info([imported])["crop_rounding"] == "half_away"   # the public code ran under Python 2
    with pytest.raises(CheckpointError, match="different test views"):
        model_info([tmp_path / "a", job("c", "half_even")])
