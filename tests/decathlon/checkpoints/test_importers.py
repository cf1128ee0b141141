"""Importing the published weights: the outputs of the public networks, reproduced."""
import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from decathlon.inference import assemble_spottune
from decathlon.checkpoints import CheckpointError, import_backbone, import_spottune, load_backbone
from decathlon.files import sha256_file
from decathlon.models import SpotTuneNet, resnet26


def _our_outputs(state, x):
    net = resnet26(1000)
    net.load_state_dict(state)
    with torch.no_grad():
        return net.eval()(x)


@pytest.mark.parametrize("version, wrapping", [("0.3.1", None), ("0.3.1", "data_parallel"), ("0.4.1", None)])
def test_imported_backbone_reproduces_the_public_network(public, old_torch, public_backbone, tmp_path, version,
                                                         wrapping):
    net = public.backbone()   # the same seeded weights as public_backbone.net
    saved = nn.DataParallel(net) if wrapping else net
    source = old_torch.save({"net": saved, "acc": np.float64(60.32), "epoch": 59},
                            tmp_path / "resnet26_pretrained.t7", version)
    record = import_backbone(source, tmp_path / "out" / "backbone.pt")
    assert record == {"kind": "imported", "name": "resnet26_pretrained.t7", "sha256": sha256_file(source),
                      "acc": 60.32, "epoch": 59}
    ckpt = load_backbone(tmp_path / "out" / "backbone.pt", 1.0)
    assert ckpt["arch"] == {"name": "resnet26", "width": 1.0} and ckpt["source"] == record
    assert ckpt["provenance"] == {"kind": "imported", "file": str(tmp_path / "out" / "backbone.pt"),
                                  "sha256": sha256_file(tmp_path / "out" / "backbone.pt"), "source": record}
    torch.testing.assert_close(_our_outputs(ckpt["state"], public_backbone.x), public_backbone.logits,
                               rtol=0, atol=1e-5)
    tracked = ckpt["state"]["stem.bn.num_batches_tracked"]
    assert tracked.item() == (0 if version == "0.3.1" else 7)   # 0.3 BatchNorms kept no count


def test_storages_named_by_their_cuda_type_are_read(public, old_torch, public_backbone, tmp_path):
    source = old_torch.save({"net": public.backbone(), "acc": np.float64(60.32), "epoch": 59},
                            tmp_path / "written.t7", "0.3.1")
    data = source.read_bytes()
    assert data.count(b"ctorch\nFloatStorage\n") == 1   # GLOBAL is newline-terminated: no offsets move
    cuda_named = tmp_path / "resnet26_pretrained.t7"
    cuda_named.write_bytes(data.replace(b"ctorch\nFloatStorage\n", b"ctorch.cuda\nFloatStorage\n"))
    import_backbone(cuda_named, tmp_path / "out" / "backbone.pt")
    ckpt = load_backbone(tmp_path / "out" / "backbone.pt", 1.0)
    torch.testing.assert_close(_our_outputs(ckpt["state"], public_backbone.x), public_backbone.logits,
                               rtol=0, atol=1e-5)


def test_the_public_file_is_taken_wherever_a_backbone_is(public_backbone, tmp_path):
    ckpt = load_backbone(public_backbone.file, 1.0)
    assert ckpt["provenance"] == {"kind": "imported", "file": str(public_backbone.file),
                                  "sha256": sha256_file(public_backbone.file)}
    torch.testing.assert_close(_our_outputs(ckpt["state"], public_backbone.x), public_backbone.logits,
                               rtol=0, atol=1e-5)
    with pytest.raises(CheckpointError, match="expected resnet26 at width 0.25"):
        load_backbone(public_backbone.file, 0.25)


def _changed(change):
    """A builder of the fabricated backbone with `change(net)` applied."""
    def build(public):
        net = public.backbone()
        change(net)
        return net
    return build


@pytest.mark.parametrize("build, message", [
    (lambda public: public.backbone("parallel"), "a parallel residual-adapter net"),
    (lambda public: public.backbone("series"), "a series residual-adapter net"),
    (_changed(lambda net: setattr(net.layer2[1].conv1.bns[0], "weight", None)),
     "has no tensor 'layer2.1.conv1.bns.0.weight'"),
    (_changed(lambda net: setattr(net.linears, "0", nn.Linear(256, 10))),
     "tensor 'linears.0.weight' has shape (10, 256), expected (1000, 256)"),
    (_changed(lambda net: setattr(net.layer3[2].conv1.conv, "stride", (2, 2))),
     "module 'layer3.2.conv1.conv' has stride=(2, 2), expected (1, 1)"),
    (_changed(lambda net: net.linears.append(nn.Linear(256, 47))), "first 'linears.1.weight': another architecture"),
], ids=["parallel", "series", "missing", "shape", "stride", "extra"])
def test_other_architectures_are_refused_clearly(public, old_torch, tmp_path, build, message):
    source = old_torch.save({"net": build(public)}, tmp_path / "net.t7", "0.3.1")
    with pytest.raises(CheckpointError, match=re.escape(f"{source}: ") + ".*" + re.escape(message)):
        import_backbone(source, tmp_path / "backbone.pt")
    assert not (tmp_path / "backbone.pt").exists()


@pytest.fixture(scope="module")
def public_spottune(public, old_torch, public_backbone, tmp_path_factory):
    """cv/dtd/dtd.t7 as SpotTune's main.py saved it under PyTorch 0.4.1, trained on
    public_backbone, by wrapping: plain and DataParallel-wrapped; and our backbone.pt
    imported from public_backbone."""
    folder = tmp_path_factory.mktemp("spottune")
    net, agent = public.spottune(public_backbone.net, 47)
    files = {"plain": old_torch.save({"net": net, "agent": agent}, folder / "dtd.t7", "0.4.1"),
             "data_parallel": old_torch.save({"net": nn.DataParallel(net), "agent": nn.DataParallel(agent)},
                                             folder / "dtd-data-parallel.t7", "0.4.1")}
    backbone = folder / "backbone.pt"
    import_backbone(public_backbone.file, backbone)
    return files, net, agent, backbone


@pytest.mark.parametrize("wrapping, backbone_kind", [("plain", "ours"), ("data_parallel", "ours"),
                                                     ("data_parallel", "public")])
def test_imported_spottune_reproduces_the_public_forward(public_backbone, public_spottune, tmp_path, wrapping,
                                                         backbone_kind):
    files, net, agent, backbone = public_spottune
    file = files[wrapping]
    backbone = backbone if backbone_kind == "ours" else public_backbone.file
    record = import_spottune(file, "dtd", backbone, tmp_path / "job")
    assert record["num_classes"] == 47 and record["source"]["sha256"] == sha256_file(file)
    assert json.loads((tmp_path / "job" / "imported.json").read_text()) == record
    state = torch.load(tmp_path / "job" / "spottune_domain.pt", weights_only=True)
    ours = SpotTuneNet(resnet26(1000), "per_domain")
    ours.backbone.load_state_dict(load_backbone(backbone, 1.0)["state"])
    ours.load_domain_state_dict("dtd", state)
    x = public_backbone.x
    with torch.no_grad():
        logits = agent(x).view(-1, 12, 2)
        torch.testing.assert_close(ours.eval().policy_logits(x, "dtd"), logits, rtol=0, atol=1e-5)
        decisions = logits.argmax(-1)
        assert 0 < decisions.sum() < decisions.numel()   # a mixed policy
        expected = {"argmax": net(x, decisions), "frozen": net(x, torch.zeros(3, 12)),
                    "tuned": net(x, torch.ones(3, 12))}
        assembled = assemble_spottune([tmp_path / "job"])
        for mode, want in expected.items():
            torch.testing.assert_close(ours(x, "dtd", mode)[0], want, rtol=0, atol=1e-5)
            torch.testing.assert_close(assembled(x, "dtd", mode)[0], want, rtol=0, atol=1e-5)


def test_spottune_import_refuses_other_backbones_domains_and_folders(public, old_torch, public_backbone,
                                                                    public_spottune, tmp_path):
    files, net, agent, backbone = public_spottune
    file = files["data_parallel"]
    other = old_torch.save({"net": public.backbone(seed=5)}, tmp_path / "other.t7", "0.3.1")
    with pytest.raises(CheckpointError, match=re.escape("frozen block 0 ('net' 'blocks.0.0.conv1.weight') differs "
                                                        "from the backbone's 'blocks.0.conv_bn1.conv.weight'")):
        import_spottune(file, "dtd", other, tmp_path / "a")
    with pytest.raises(CheckpointError, match="has 47 classes, domain 'svhn' has 10"):
        import_spottune(file, "svhn", backbone, tmp_path / "b")
    with pytest.raises(CheckpointError, match="'net' is a models.ResNet, expected a spottune_models.ResNet"):
        import_spottune(public_backbone.file, "dtd", backbone, tmp_path / "c")
    with pytest.raises(CheckpointError, match="import it with `decathlon import-spottune`"):
        import_backbone(file, tmp_path / "d.pt")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "final.json").write_text("{}")
    with pytest.raises(CheckpointError, match="a trained job's folder"):
        import_spottune(file, "dtd", backbone, tmp_path / "e")
    assert not any((tmp_path / name / "spottune_domain.pt").exists() for name in "abce")
