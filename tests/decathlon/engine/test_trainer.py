"""The training engine on the tiny synthetic decathlon: records, resume, errors."""
import json

import numpy as np
import pytest
import torch

from decathlon.engine import JobSpec, run_job, trainer
from decathlon.checkpoints import CheckpointError, load_backbone, load_checkpoint
from decathlon.files import sha256_file
from decathlon.benchmark import hparams
from decathlon.methods import get_method


def _spec(tiny_decathlon, tiny_backbone, tiny_hparams, out, method="spottune", epochs=3, **changes):
    hp = hparams(method, "dtd", "cpu_demo", dict(tiny_hparams, epochs=epochs, lr_milestones=[2]))
    values = dict(method=method, domain="dtd", data=str(tiny_decathlon), out=str(out), hparams=hp,
                  backbone=tiny_backbone and str(tiny_backbone), device="cpu", progress=False)
    values.update(changes)
    return JobSpec(**values)


def test_job_writes_records_predictions_and_done(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    final = run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path))
    lines = [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert [line["lr"] for line in lines] == pytest.approx([0.05, 0.005, 0.005])
    assert not any("test_accuracy" in line for line in lines)  # never monitored on test
    assert all(0 <= line["val_accuracy"] <= 1 and len(line["val_stats"]["policy_usage"]) == 12 for line in lines)
    assert (tmp_path / "done").is_file() and (tmp_path / "spottune_domain.pt").is_file()
    assert set(final["splits"]) == {"val", "test"} and final["synthetic"] is True
    assert final["spec"]["hparams"]["eval_policy"] == "argmax" and final["spec"]["protocol"] == "train"
    test = np.load(tmp_path / "predictions_test.npz")
    assert len(np.unique(test["image_ids"])) == final["splits"]["test"]["num_images"]


def test_trainval_protocol_trains_on_both_and_scores_test_only(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    final = run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, method="finetune",
                          protocol="trainval"))
    assert set(final["splits"]) == {"test"}
    assert final["spec"]["protocol"] == "trainval"


def test_resumed_job_ends_with_the_weights_of_an_uninterrupted_one(
        tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, whole))

    killed = tmp_path / "killed"
    saves = []
    real_save = trainer.save_atomic

    def save_then_die(obj, path):
        real_save(obj, path)
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt  # killed right after the checkpoint of epoch 2
    monkeypatch.setattr(trainer, "save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, killed))
    monkeypatch.setattr(trainer, "save_atomic", real_save)
    assert not (killed / "done").exists()
    with pytest.raises(CheckpointError, match="pass --resume"):
        run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, killed))
    run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, killed, resume=True))

    a = load_checkpoint(whole / "checkpoint.pt", "job")["method"]
    b = load_checkpoint(killed / "checkpoint.pt", "job")["method"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)
    assert (killed / "record.jsonl").read_text().count("\n") == 3


def test_resume_refuses_a_checkpoint_of_another_job(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, method="finetune"))
    with pytest.raises(CheckpointError, match="written for method='finetune'"):
        run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, method="bn_adapt", resume=True))


def test_backbone_of_another_width_is_refused(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    spec = _spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, method="finetune")
    spec.hparams["width"] = 0.25
    with pytest.raises(CheckpointError, match="another architecture"):
        run_job(spec)


def test_missing_shards_and_missing_backbone_are_clear(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    from decathlon.data import ManifestError

    with pytest.raises(ManifestError, match="no manifest here"):
        run_job(_spec(tmp_path, tiny_backbone, tiny_hparams, tmp_path / "a"))
    with pytest.raises(ManifestError, match="'aircraft' was not prepared"):
        run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path / "b", domain="aircraft"))
    with pytest.raises(ValueError, match="pass --backbone"):
        run_job(_spec(tiny_decathlon, None, tiny_hparams, tmp_path / "c"))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        run_job(_spec(tiny_decathlon, tmp_path / "nope.pt", tiny_hparams, tmp_path / "d"))


def test_spottune_jobs_assemble_into_one_multi_domain_model(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    from decathlon.inference import assemble_spottune
    from decathlon.data import ShardLoader

    jobs = {}
    for domain, method in (("dtd", "spottune"), ("svhn", "spottune")):
        jobs[domain] = tmp_path / domain
        run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, jobs[domain], method=method, domain=domain))
    net = assemble_spottune(jobs.values())
    assert set(net.domains) == {"dtd", "svhn"}
    backbone_copies = [m for m in net.modules() if m is net.backbone]
    assert len(backbone_copies) == 1
    for domain, folder in jobs.items():
        saved = np.load(folder / "predictions_val.npz")
        loader = ShardLoader(tiny_decathlon, domain, "val", 64, train=False, protocol="spottune", shuffle=False,
                             seed=0, drop_last=False, device="cpu")
        ids, predicted = [], []
        with torch.no_grad():
            for images, _, image_ids in loader:
                predicted.append(net(images, domain)[0].argmax(1).numpy())
                ids.append(np.asarray(image_ids))
        order = np.argsort(np.concatenate(ids))
        assert np.array_equal(np.concatenate(ids)[order], saved["image_ids"])
        assert np.array_equal(np.concatenate(predicted)[order], saved["labels"])
    with pytest.raises(CheckpointError, match="a second job for domain 'dtd'"):
        assemble_spottune([jobs["dtd"], jobs["dtd"]])


def test_spottune_job_is_evaluated_with_both_test_time_policies(tiny_decathlon, tiny_backbone, tiny_hparams,
                                                                tmp_path):
    hp_overrides = {"sample_draws": 2, "sample_seed": 7}
    spec = _spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, epochs=1)
    spec.hparams.update(hp_overrides, epochs=1)
    final = run_job(spec)
    argmax, sample = final["evaluations"]
    assert (argmax["eval_policy"], sample["eval_policy"]) == ("argmax", "sample")
    assert final["splits"] == argmax["splits"]   # the reported policy comes first
    for split in ("val", "test"):
        assert argmax["splits"][split]["predictions"] == f"predictions_{split}.npz"
        assert sample["splits"][split]["predictions"] == f"predictions_{split}-eval-sample.npz"
        assert (tmp_path / sample["splits"][split]["predictions"]).is_file()
    draws = sample["splits"]["val"]["draw_accuracies"]
    assert len(draws) == 2 and sample["splits"]["val"]["accuracy"] == pytest.approx(np.mean(draws))
    assert final["execution"]["step"] == "eager" and final["format"] == 2
    assert final["backbone"] == {"file": str(tiny_backbone), "kind": "ours", "sha256": sha256_file(tiny_backbone)}

    from decathlon.engine import evaluate
    from decathlon.data import ShardLoader
    from decathlon.engine import distributed

    method = get_method("spottune")(final["num_classes"], spec.hparams, load_backbone(tiny_backbone, 0.125)["state"])
    method.load_state_dict(load_checkpoint(tmp_path / "checkpoint.pt", "job")["method"])
    loader = ShardLoader(tiny_decathlon, "dtd", "val", 64, train=False, protocol="spottune", shuffle=False,
                         seed=0, drop_last=False, device="cpu")
    again = evaluate(method, loader, distributed.local("cpu"), "sample", draws=2, seed=7)
    assert again.draw_accuracies == draws   # a fixed seed: the sampled evaluation is reproducible
    saved = np.load(tmp_path / "predictions_val-eval-sample.npz")
    assert np.array_equal(again.predictions, saved["labels"])


def test_bf16_precision_runs_on_cpu_and_is_recorded(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    spec = _spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, method="finetune")
    spec.hparams.update(precision="bf16", epochs=1)
    final = run_job(spec)
    assert final["spec"]["hparams"]["precision"] == "bf16"
    assert 0 <= final["splits"]["val"]["accuracy"] <= 1


def test_cuda_graphs_on_a_cpu_job_are_refused(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, method="finetune", cuda_graphs=True))
