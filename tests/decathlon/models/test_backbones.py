"""Backbone architectures: ResNet-26 unchanged, timm models behind one layout."""
import pytest
import torch

from decathlon.benchmark import hparams
from decathlon.methods import get_method
from decathlon.methods.base import check_backbone, new_backbone
from decathlon.models import TimmNet, build_network, check_arch, reference_parameter_count, resnet26

TINY_VIT = {"depth": 2, "embed_dim": 48, "num_heads": 2}


def test_resnet26_is_the_default_arch_with_the_same_unit_of_par():
    hp = hparams("finetune", "aircraft")
    assert hp["arch"] == "resnet26" and hp["input_size"] is None and hp["arch_kwargs"] == {}
    assert reference_parameter_count(hp) == sum(p.numel() for p in resnet26(0, hp["width"]).parameters())


@pytest.mark.parametrize("size", [(64, 64), (72, 72), (144, 72)])
def test_a_native_vit_takes_every_decathlon_image_shape(size):
    torch.manual_seed(0)
    net = build_network("timm:vit_tiny_patch16_224", 7, patch_size=8, arch_kwargs=TINY_VIT)
    assert isinstance(net, TimmNet) and net.classifier.out_features == 7
    assert net(torch.randn(2, 3, *size)).shape == (2, 7)


def test_a_fixed_input_size_resizes_first():
    torch.manual_seed(0)
    net = build_network("timm:vit_tiny_patch16_224", 3, input_size=32, arch_kwargs=TINY_VIT).eval()
    x = torch.randn(2, 3, 64, 64)
    small = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.equal(net(x), net.classifier(net.body(small)))


def test_a_timm_backbone_loads_its_pretrained_state_without_the_classifier():
    hp = hparams("finetune", "aircraft", overrides={"arch": "timm:resnet18"})
    torch.manual_seed(0)
    pretrained = new_backbone(hp, 12, None)
    net = new_backbone(hp, 5, pretrained.state_dict())
    assert net.classifier.out_features == 5
    assert all(torch.equal(net.state_dict()[k], v) for k, v in pretrained.state_dict().items()
               if not k.startswith("classifier."))


@pytest.mark.parametrize("arch, words", [("resnet50", "expected 'resnet26' or 'timm:"),
                                         ("timm:no_such_net", "timm has no model 'no_such_net'")])
def test_an_unknown_arch_is_one_clear_error(arch, words):
    with pytest.raises(ValueError, match=words):
        check_arch(arch)
    with pytest.raises(ValueError, match=words):
        hparams("finetune", "aircraft", overrides={"arch": arch})


def test_patch_size_of_a_cnn_and_unknown_keywords_are_refused():
    with pytest.raises(ValueError, match="patch_size applies to ViTs only"):
        build_network("timm:resnet18", 2, patch_size=8)
    with pytest.raises(ValueError, match="arch_kwargs"):
        build_network("timm:resnet18", 2, arch_kwargs={"no_such_keyword": 1})


def test_a_resnet26_only_method_refuses_a_timm_backbone_by_name():
    with pytest.raises(ValueError, match="'series_adapters' is defined on the benchmark's ResNet-26"):
        check_backbone(get_method("series_adapters"), "timm:resnet18")
    check_backbone(get_method("finetune"), "timm:resnet18")


@pytest.mark.parametrize("override", [{"input_size": 224}, {"patch_size": 8}, {"arch_kwargs": {"depth": 2}}])
def test_a_timm_only_setting_on_resnet26_is_refused_not_recorded_unused(override):
    with pytest.raises(ValueError, match=f"{next(iter(override))} apply to timm backbones"):
        hparams("finetune", "aircraft", overrides=override)
    with pytest.raises(ValueError, match="not to resnet26"):
        build_network("resnet26", 3, **override)
