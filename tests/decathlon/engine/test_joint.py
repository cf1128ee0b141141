"""spottune_joint through the engine: equal to per-domain SpotTune on one domain, several
domains in one job and one model file, resume."""
import json

import numpy as np
import pytest
import torch

from decathlon.benchmark import hparams, joint_hparams
from decathlon.engine import JobSpec, run_job, trainer
from decathlon.models import SpotTuneNet
from decathlon.jobdir import MODEL_FILE


def _joint(tiny_decathlon, tiny_backbone, tiny_hparams, out, domains, **changes):
    hp = joint_hparams("spottune_joint", domains, "cpu_demo", dict(tiny_hparams, epochs=2, lr_milestones=[1]))
    return JobSpec("spottune_joint", "+".join(domains), str(tiny_decathlon), str(out), hp, backbone=str(tiny_backbone),
                   device="cpu", progress=False, domains=tuple(domains), **changes)


def test_a_joint_job_on_one_domain_is_per_domain_spottune_with_a_shared_trunk(tiny_decathlon, tiny_backbone,
                                                                            tiny_hparams, tmp_path):
    hp = hparams("spottune", "dtd", "cpu_demo", dict(tiny_hparams, epochs=2, lr_milestones=[1], policy="shared_trunk"))
    single = run_job(JobSpec("spottune", "dtd", str(tiny_decathlon), str(tmp_path / "single"), hp,
                             backbone=str(tiny_backbone), device="cpu", progress=False))
    joint = run_job(_joint(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path / "joint", ["dtd"]))
    for one, other in zip(single["evaluations"], joint["evaluations"]):
        assert one["eval_policy"] == other["eval_policy"] and other["domain"] == "dtd"
        for split in ("val", "test"):
            a = np.load(tmp_path / "single" / one["splits"][split]["predictions"])
            b = np.load(tmp_path / "joint" / other["splits"][split]["predictions"])
            assert np.array_equal(a["image_ids"], b["image_ids"]) and np.array_equal(a["labels"], b["labels"])
            assert one["splits"][split]["accuracy"] == other["splits"][split]["accuracy"]
    losses = [[json.loads(line)["train_loss"] for line in (tmp_path / name / "record.jsonl").read_text().splitlines()]
              for name in ("single", "joint")]
    assert losses[0] == losses[1]


def test_one_job_trains_every_domain_and_ships_one_model_file(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    final = run_job(_joint(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, ["dtd", "svhn"]))
    assert [(e["domain"], e["eval_policy"]) for e in final["evaluations"]] == [
        ("dtd", "argmax"), ("dtd", "sample"), ("svhn", "argmax"), ("svhn", "sample")]
    assert final["splits"] == {} and final["stored_parameters"]["shared"] > 0
    line = json.loads((tmp_path / "record.jsonl").read_text().splitlines()[-1])
    assert set(line["val_accuracy_by_domain"]) == {"dtd", "svhn"}
    model = SpotTuneNet.load(tmp_path / MODEL_FILE)
    assert set(model.domains) == {"dtd", "svhn"} and model.info["augmentation"] == "spottune"
    assert model.info["crop_rounding"] == tiny_hparams.get("crop_rounding", "half_even")
    from decathlon.data import ShardLoader
    for evaluation in final["evaluations"][0::2]:   # argmax: the saved model reproduces the job's predictions
        saved = np.load(tmp_path / evaluation["splits"]["test"]["predictions"])
        loader = ShardLoader(tiny_decathlon, evaluation["domain"], "test", 64, train=False, protocol="spottune",
                             shuffle=False, seed=0, drop_last=False, device="cpu")
        ids, labels = [], []
        with torch.no_grad():
            for images, _, image_ids in loader:
                labels.append(model(images, evaluation["domain"], "argmax")[0].argmax(1).numpy())
                ids.append(np.asarray(image_ids))
        order = np.argsort(np.concatenate(ids))
        assert np.array_equal(np.concatenate(labels)[order], saved["labels"])


def test_a_killed_joint_job_resumes_to_the_same_weights(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path,
                                                        monkeypatch):
    from decathlon.checkpoints import load_checkpoint

    run_job(_joint(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path / "whole", ["dtd", "svhn"]))
    real_save = trainer.save_atomic

    def save_then_die(obj, path):
        real_save(obj, path)
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer, "save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_job(_joint(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path / "killed", ["dtd", "svhn"]))
    monkeypatch.setattr(trainer, "save_atomic", real_save)
    run_job(_joint(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path / "killed", ["dtd", "svhn"], resume=True))
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt", "job")["method"]
    b = load_checkpoint(tmp_path / "killed" / "checkpoint.pt", "job")["method"]
    assert all(torch.equal(a[k], b[k]) for k in a if torch.is_tensor(a[k]))


def test_a_one_domain_method_refuses_a_joint_job_and_back(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    spec = _joint(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, ["dtd", "svhn"])
    spec.method = "spottune"
    with pytest.raises(ValueError, match="trains one domain per job; the job names 2"):
        run_job(spec)
