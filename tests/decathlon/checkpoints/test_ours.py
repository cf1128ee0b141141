"""Every file the engine writes loads with torch.load(weights_only=True); nothing else is written."""
from collections import Counter

import numpy as np
import pytest
import torch

from decathlon.benchmark import hparams
from decathlon.checkpoints import CheckpointError, load_backbone, load_checkpoint, save_atomic
from decathlon.files import sha256_file
from decathlon.engine import JobSpec, run_job


def test_every_file_of_a_job_loads_weights_only(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    hp = hparams("spottune", "dtd", "cpu_demo", dict(tiny_hparams, epochs=1, lr_milestones=[1]))
    run_job(JobSpec("spottune", "dtd", str(tiny_decathlon), str(tmp_path), hp, backbone=str(tiny_backbone),
                    device="cpu", progress=False))
    files = [tiny_backbone, tiny_backbone.parent / "checkpoint.pt", tmp_path / "checkpoint.pt",
             tmp_path / "spottune_domain.pt"]
    loaded = {file.name if file.parent == tmp_path else f"pretrain/{file.name}": torch.load(file, weights_only=True)
              for file in files}
    job = loaded["checkpoint.pt"]
    assert isinstance(job["scheduler"]["milestones"], Counter)   # MultiStepLR's milestones, kept as such
    assert job["identity"]["hparams"] == hp and torch.is_tensor(job["rng"]["torch"])
    assert loaded["pretrain/backbone.pt"]["kind"] == "backbone"
    assert "_extra_state" in loaded["spottune_domain.pt"]


def test_save_refuses_what_weights_only_cannot_read(tmp_path):
    with pytest.raises(TypeError, match=r"x\.pt: value\['stats'\]\['mean'\] is a numpy\.float64"):
        save_atomic({"stats": {"mean": np.float64(0.5)}}, tmp_path / "x.pt")
    with pytest.raises(TypeError, match=r"value\['when'\]\[1\] is a builtins\.object"):
        save_atomic({"when": [1, object()]}, tmp_path / "x.pt")
    assert not list(tmp_path.iterdir())
    save_atomic({"milestones": Counter([3, 6]), "size": torch.Size([2]), "dtype": torch.float32}, tmp_path / "x.pt")
    assert torch.load(tmp_path / "x.pt", weights_only=True)["milestones"] == Counter([3, 6])


def test_a_checkpoint_needing_other_globals_is_refused_unrun(tmp_path):
    torch.save({"format": 1, "kind": "job", "tool": np.float64(1.0)}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"refused by torch.load\(weights_only=True\): it needs global numpy"):
        load_checkpoint(tmp_path / "checkpoint.pt", "job")


def test_backbone_provenance(tiny_backbone, tiny_hparams):
    width = tiny_hparams["width"]
    ours = {"file": str(tiny_backbone), "sha256": sha256_file(tiny_backbone)}
    assert load_backbone(tiny_backbone, width)["provenance"] == {"kind": "ours", **ours}
    assert load_backbone(tiny_backbone, width, run_dir=tiny_backbone.parent)["provenance"] == {
        "kind": "pretrained by this run", **ours}


def test_a_checkpoint_from_before_the_backbone_keys_resumes_its_job_and_no_other(tmp_path):
    from decathlon.checkpoints.ours import ADDED_HPARAMS, check_resumable

    hp = hparams("finetune", "aircraft")
    older = {k: v for k, v in hp.items() if k not in ADDED_HPARAMS}
    ckpt = {"identity": {"method": "finetune", "hparams": older}}
    check_resumable(ckpt, tmp_path / "checkpoint.pt", {"method": "finetune", "hparams": hp})
    other = hparams("finetune", "aircraft", overrides={"arch": "timm:resnet18"})
    with pytest.raises(CheckpointError, match="written for hparams="):
        check_resumable(ckpt, tmp_path / "checkpoint.pt", {"method": "finetune", "hparams": other})
