"""NetTailor jobs in the engine: the teacher they need, and resume within either phase."""
import json

import pytest
import torch

from decathlon.benchmark import hparams
from decathlon.checkpoints import load_checkpoint
from decathlon.engine import JobError, JobSpec, run_job, trainer


def _spec(data, backbone, tiny, out, method="nettailor", teacher=None, **changes):
    extra = dict(epochs=3, prune_epoch=1, lr_milestones=[2]) if method == "nettailor" else dict(epochs=1)
    hp = hparams(method, "dtd", "cpu_demo", {**tiny, **extra, **changes.pop("hp", {})})
    return JobSpec(method, "dtd", str(data), str(out), hp, backbone=str(backbone), device="cpu", progress=False,
                   teacher=teacher and str(teacher), **changes)


@pytest.fixture(scope="module")
def teacher(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, out, method="finetune"))
    return out


def test_a_student_without_a_finished_teacher_of_its_domain_and_seed_is_refused_naming_the_job(
        tiny_decathlon, tiny_backbone, tiny_hparams, teacher, tmp_path):
    args = (tiny_decathlon, tiny_backbone, tiny_hparams)
    with pytest.raises(JobError, match="finished finetune job of domain 'dtd', seed 0.*--teacher"):
        run_job(_spec(*args, tmp_path / "a"))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with pytest.raises(JobError, match=f"teacher job {unfinished}: not finished"):
        run_job(_spec(*args, tmp_path / "b", teacher=unfinished))
    with pytest.raises(JobError, match=f"teacher job {teacher}: has seed=0; .* seed 1"):
        run_job(_spec(*args, tmp_path / "c", teacher=teacher, seed=1))
    with pytest.raises(JobError, match="takes no teacher"):
        run_job(_spec(*args, tmp_path / "d", method="finetune", teacher=teacher))
    assert not any((tmp_path / name / "checkpoint.pt").exists() for name in "abcd")


@pytest.mark.parametrize("killed_after", [1, 2])   # at the pruning epoch's start; within fine-tuning
def test_resume_in_either_phase_ends_as_an_uninterrupted_job(
        tiny_decathlon, tiny_backbone, tiny_hparams, teacher, tmp_path, monkeypatch, killed_after):
    args = (tiny_decathlon, tiny_backbone, tiny_hparams)
    whole = run_job(_spec(*args, tmp_path / "whole", teacher=teacher))
    saves, real_save = [], trainer.save_atomic

    def save_then_die(obj, path):
        real_save(obj, path)
        saves.append(path)
        if len(saves) == killed_after:
            raise KeyboardInterrupt
    monkeypatch.setattr(trainer, "save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_job(_spec(*args, tmp_path / "killed", teacher=teacher))
    monkeypatch.setattr(trainer, "save_atomic", real_save)
    resumed = run_job(_spec(*args, tmp_path / "killed", teacher=teacher, resume=True))

    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt", "job")
    b = load_checkpoint(tmp_path / "killed" / "checkpoint.pt", "job")
    assert a["method"].keys() == b["method"].keys()
    assert all(torch.equal(a["method"][k], b["method"][k]) for k in a["method"])
    assert a["scheduler"] == b["scheduler"]
    lines = [json.loads(line) for line in (tmp_path / "killed" / "record.jsonl").read_text().splitlines()]
    # The lr each line records is the next epoch's: epoch 2 (pruned) starts at finetune_lr 0.005,
    # and milestone 2 takes epoch 3 to 0.0005.
    assert [line["lr"] for line in lines] == pytest.approx([0.05, 0.0005, 0.0005])
    assert "train_complexity" in lines[0] and "train_complexity" not in lines[1]
    assert resumed["stored_parameters"] == whole["stored_parameters"]
    assert whole["spec"]["teacher"] == str(teacher)
