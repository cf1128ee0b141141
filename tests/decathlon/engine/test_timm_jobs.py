"""A timm backbone through the engine: pretrained in the suite (closed track), then methods on
it; weights made elsewhere (open track); norm-only over any backbone; never timm's hub unasked."""
import json

import pytest
import safetensors.torch
import timm
import torch

from decathlon.benchmark import hparams, pretrain_hparams
from decathlon.checkpoints import load_checkpoint
from decathlon.engine import JobSpec, pretrain, run_job
from decathlon.files import sha256_file

TINY_VIT = {"arch": "timm:vit_tiny_patch16_224", "patch_size": 8,
            "arch_kwargs": {"depth": 2, "embed_dim": 48, "num_heads": 2}}
SHORT = {"epochs": 1, "lr_milestones": [1], "batch_size": 16, "eval_batch_size": 64}
ARCHITECTURE = {"arch": "timm:vit_tiny_patch16_224", "width": None, "input_size": None, "patch_size": 8,
                "arch_kwargs": TINY_VIT["arch_kwargs"]}


@pytest.fixture
def no_hub(monkeypatch):
    """timm's pretrained loading fails the test if anything calls it."""
    def refuse(*args, **kwargs):
        raise AssertionError("timm's hub was called")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", refuse)


def _final(folder):
    return json.loads((folder / "final.json").read_text())


def _job(method, domain, data, out, backbone, **overrides):
    hp = hparams(method, domain, "cpu_demo", {**TINY_VIT, **SHORT, **overrides})
    return run_job(JobSpec(method, domain, str(data), str(out), hp, backbone=str(backbone), device="cpu",
                           progress=False))


def test_a_timm_backbone_pretrained_in_the_suite_then_finetuned_is_closed_track(tiny_decathlon, tmp_path, no_hub):
    backbone = pretrain(tiny_decathlon, tmp_path / "pretrain", pretrain_hparams("cpu_demo", {**TINY_VIT, **SHORT}),
                        {"preset": "cpu_demo"}, device="cpu", progress=False)
    assert load_checkpoint(backbone, "backbone")["arch"] == {"name": "timm:vit_tiny_patch16_224", "input_size": None,
                                                            "patch_size": 8, "arch_kwargs": TINY_VIT["arch_kwargs"]}
    pretraining = _final(tmp_path / "pretrain")
    assert pretraining["track"] == "closed" and pretraining["pretraining"]["kind"] == "none"
    assert pretraining["architecture"] == ARCHITECTURE
    for domain in ("dtd", "svhn"):
        _job("finetune", domain, tiny_decathlon, tmp_path / domain, backbone)
        final = _final(tmp_path / domain)
        assert final["track"] == "closed" and final["architecture"] == ARCHITECTURE
        assert final["pretraining"]["kind"] == "suite"
        assert final["pretraining"]["source"].startswith("imagenet12, pretrained by this suite (backbone.pt, sha256 ")
        assert final["splits"]["val"]["accuracy"] is not None


def test_weights_made_elsewhere_make_an_open_track_job(tiny_decathlon, tmp_path, no_hub):
    model = timm.create_model("vit_tiny_patch16_224", img_size=72, patch_size=8, dynamic_img_size=True,
                              **TINY_VIT["arch_kwargs"])
    safetensors.torch.save_file(model.state_dict(), tmp_path / "vit.safetensors")
    final = _job("feature_extractor", "dtd", tiny_decathlon, tmp_path / "job", tmp_path / "vit.safetensors")
    assert final["track"] == "open" and final["backbone"]["kind"] == "external"
    sha = sha256_file(tmp_path / "vit.safetensors")
    assert final["pretraining"] == {"kind": "external", "source": f"external file vit.safetensors (sha256 {sha[:12]})"}


def test_norm_only_on_a_vit_trains_layer_norms_and_classifier_only(tiny_decathlon, tmp_path, no_hub):
    model = timm.create_model("vit_tiny_patch16_224", img_size=72, patch_size=8, dynamic_img_size=True,
                              **TINY_VIT["arch_kwargs"])
    safetensors.torch.save_file(model.state_dict(), tmp_path / "vit.safetensors")
    _job("bn_adapt", "dtd", tiny_decathlon, tmp_path / "job", tmp_path / "vit.safetensors")
    trained = torch.load(tmp_path / "job" / "checkpoint.pt", weights_only=True)["method"]
    start = model.state_dict()
    moved = {key[len("net.body."):] for key, value in trained.items() if key.startswith("net.body.")
             and not torch.equal(value, start[key[len("net.body."):]])}
    assert moved and all(".norm" in key or key.startswith("norm.") for key in moved), moved
