"""Backbone weights made elsewhere for a timm arch: safetensors and state dicts become our
TimmNet's backbone, timm's own filter resamples a ViT's embeddings, anything else is one line."""
import pickle

import pytest
import safetensors.torch
import timm
import torch

from decathlon.checkpoints import (TIMM_HUB, CheckpointError, arch_record, backbone_checkpoint, load_backbone,
                                   save_atomic)
from decathlon.methods.base import new_backbone

VIT = dict(arch="timm:vit_tiny_patch16_224", input_size=None, patch_size=8, width=1.0,
           arch_kwargs={"depth": 2, "embed_dim": 48, "num_heads": 2})
RESNET18 = dict(arch="timm:resnet18", input_size=None, patch_size=None, width=1.0, arch_kwargs={})


def _timm_vit(**kwargs):
    """The tiny ViT as timm makes it, with its 1000-way head (what a downloaded file holds)."""
    return timm.create_model("vit_tiny_patch16_224", depth=2, embed_dim=48, num_heads=2, **kwargs)


def _native_vit():
    return _timm_vit(img_size=72, patch_size=8, dynamic_img_size=True)


def _body_equals(net, model) -> None:
    theirs = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    ours = net.body.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_safetensors_file_round_trips_into_the_model(tmp_path):
    model = _native_vit()
    safetensors.torch.save_file(model.state_dict(), tmp_path / "vit.safetensors")
    ckpt = load_backbone(tmp_path / "vit.safetensors", arch_record(VIT))
    assert ckpt["provenance"]["kind"] == "external" and len(ckpt["provenance"]["sha256"]) == 64
    assert not any(key.startswith(("classifier.", "body.head")) for key in ckpt["state"])
    _body_equals(new_backbone(VIT, 5, ckpt["state"]), model)


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_a_state_dict_round_trips_wrapped_or_not(tmp_path, wrap):
    model = timm.create_model("resnet18")
    state = model.state_dict()
    torch.save({wrap: state} if wrap else state, tmp_path / "r18.pth")
    net = new_backbone(RESNET18, 3, load_backbone(tmp_path / "r18.pth", arch_record(RESNET18))["state"])
    theirs = {k: v for k, v in state.items() if not k.startswith("fc.")}
    assert all(torch.equal(net.body.state_dict()[k], v) for k, v in theirs.items())
    assert net.body.state_dict().keys() == theirs.keys()


def test_224_px_weights_are_resampled_by_timms_own_filter_to_native_72_px_patch_8(tmp_path):
    """Exactly what timm's own pretrained loading makes of the same file (local, no network)."""
    file = tmp_path / "vit224.safetensors"
    safetensors.torch.save_file(_timm_vit().state_dict(), file)
    ckpt = load_backbone(file, arch_record(VIT))
    assert ckpt["state"]["body.pos_embed"].shape == (1, 1 + 9 * 9, 48)
    assert ckpt["state"]["body.patch_embed.proj.weight"].shape == (48, 3, 8, 8)
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay={"file": str(file)},
                                  num_classes=0, depth=2, embed_dim=48, num_heads=2, img_size=72, patch_size=8,
                                  dynamic_img_size=True)
    _body_equals(new_backbone(VIT, 5, ckpt["state"]), reference)


def test_a_pickled_module_or_plain_pickle_is_refused_unrun(tmp_path):
    torch.save(_native_vit(), tmp_path / "module.pth")
    with pytest.raises(CheckpointError, match=r"module\.pth: refused: it needs a full unpickler \(global timm\.models"
                                              r".*save the weights as model\.state_dict\(\).*or as safetensors"):
        load_backbone(tmp_path / "module.pth", arch_record(VIT))
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"weights": [1, 2]}, f, protocol=4)
    with pytest.raises(CheckpointError, match=r"plain\.pkl: .*(refused|cannot read)"):
        load_backbone(tmp_path / "plain.pkl", arch_record(VIT))


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.safetensors: checkpoint not found"):
        load_backbone(tmp_path / "nope.safetensors", arch_record(VIT))


def test_weights_of_another_architecture_name_the_first_offending_tensor(tmp_path):
    safetensors.torch.save_file(timm.create_model("resnet18").state_dict(), tmp_path / "r18.safetensors")
    with pytest.raises(CheckpointError, match=r"r18\.safetensors: the weights are of another architecture: tensor "
                                              r"'(bn1|conv1)\.[a-z_]+' has shape \(.*\), timm:vit_tiny_patch16_224 "
                                              r"has no such tensor"):
        load_backbone(tmp_path / "r18.safetensors", arch_record(VIT))
    wide = timm.create_model("vit_tiny_patch16_224", depth=2, embed_dim=64, num_heads=2, img_size=72, patch_size=8,
                             dynamic_img_size=True)
    safetensors.torch.save_file(wide.state_dict(), tmp_path / "wide.safetensors")
    with pytest.raises(CheckpointError, match=r"wide\.safetensors: the weights are of another architecture: tensor "
                                              r"'\w.*' has shape \(.*64.*\), timm:vit_tiny_patch16_224 expects \(.*48"):
        load_backbone(tmp_path / "wide.safetensors", arch_record(VIT))
    state = _native_vit().state_dict()
    del state["blocks.1.mlp.fc2.bias"]
    safetensors.torch.save_file(state, tmp_path / "short.safetensors")
    with pytest.raises(CheckpointError, match=r"short\.safetensors: .*tensor 'blocks\.1\.mlp\.fc2\.bias' \(48,\) is "
                                              r"missing \(1 missing in all\)"):
        load_backbone(tmp_path / "short.safetensors", arch_record(VIT))


def test_a_file_that_is_no_state_dict_is_one_line(tmp_path):
    torch.save({"epoch": 3, "weights": torch.zeros(2)}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=r"odd\.pt: not a state dict: 'epoch' holds a int, expected a tensor"):
        load_backbone(tmp_path / "odd.pt", arch_record(VIT))


def test_our_backbone_file_records_a_timm_arch_and_refuses_another(tmp_path):
    net = new_backbone(VIT, 4, None)
    save_atomic(backbone_checkpoint(net, arch_record(VIT), domain="imagenet12"), tmp_path / "backbone.pt")
    ckpt = load_backbone(tmp_path / "backbone.pt", arch_record(VIT))
    assert ckpt["arch"] == {"name": "timm:vit_tiny_patch16_224", "input_size": None, "patch_size": 8,
                            "arch_kwargs": VIT["arch_kwargs"]}
    assert ckpt["provenance"]["kind"] == "ours" and "classifier.weight" in ckpt["state"]
    with pytest.raises(CheckpointError, match=r"backbone\.pt: field 'arch' is .*timm:vit_tiny.*expected "
                                              r"timm:vit_tiny_patch16_224 with input_size None, patch_size 16.*"
                                              r"another architecture"):
        load_backbone(tmp_path / "backbone.pt", arch_record(dict(VIT, patch_size=16)))
    with pytest.raises(CheckpointError, match=r"field 'arch' is .*expected resnet26 at width 0.25"):
        load_backbone(tmp_path / "backbone.pt", 0.25)


def test_a_resnet26_backbone_record_is_unchanged():
    assert arch_record({"arch": "resnet26", "width": 0.25}) == {"name": "resnet26", "width": 0.25}
    assert arch_record({"width": 1.0}) == {"name": "resnet26", "width": 1.0}


def test_timm_hub_loads_through_timm_only_when_asked(monkeypatch):
    calls = []

    def fake_load_pretrained(model, pretrained_cfg=None, **kwargs):   # no network in tests
        calls.append(pretrained_cfg)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(0.5)

    monkeypatch.setattr(timm.models._builder, "load_pretrained", fake_load_pretrained)
    ckpt = load_backbone(TIMM_HUB, arch_record(VIT))
    assert len(calls) == 1 and torch.all(ckpt["state"]["body.cls_token"] == 0.5)
    assert ckpt["provenance"]["kind"] == "timm-hub" and ckpt["provenance"]["file"] == TIMM_HUB
    assert ckpt["provenance"]["pretrained"].startswith("vit_tiny_patch16_224.")
    assert load_backbone(TIMM_HUB, arch_record(VIT))["provenance"]["sha256"] == ckpt["provenance"]["sha256"]
