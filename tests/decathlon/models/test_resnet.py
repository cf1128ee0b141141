"""ResNet-26 as docs/reference.md, section 3 describes it."""
import torch
from torch import nn

from decathlon.models import (BasicBlock, ZeroPadShortcut, conv3x3_weight_count,
                              resnet26, split_shared_and_domain_parameters)


def test_conv3x3_weights_match_the_benchmark():
    assert conv3x3_weight_count(resnet26(1000)) == 5_806_944


def test_layout_has_26_layers_and_twelve_blocks():
    model = resnet26(10, width=0.25)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == 26
    assert len(model.blocks) == 12 and all(isinstance(b, BasicBlock) for b in model.blocks)


def test_feature_maps_are_32_16_8_for_64_pixel_input():
    model = resnet26(10, width=0.25).eval()
    x = model.stem(torch.randn(2, 3, 64, 64))
    sizes = []
    for block in model.blocks:
        x = block(x)
        sizes.append(x.shape[-1])
    assert sizes == [32] * 4 + [16] * 4 + [8] * 4
    assert x.shape[1] == 64  # 256 * 0.25


def test_shortcuts_have_no_parameters_and_pad_with_zeros():
    model = resnet26(10, width=0.25)
    assert all(not list(b.shortcut.parameters()) for b in model.blocks)
    downsampling = [b.shortcut for b in model.blocks if isinstance(b.shortcut, ZeroPadShortcut)]
    assert len(downsampling) == 3
    x = torch.randn(2, 8, 32, 32)
    y = downsampling[0](x)
    assert y.shape == (2, 16, 16, 16)
    assert torch.allclose(y[:, :8], nn.functional.avg_pool2d(x, 2))
    assert torch.count_nonzero(y[:, 8:]) == 0


def test_stem_is_conv_then_bn_without_relu():
    model = resnet26(10, width=0.25).eval()
    assert not any(isinstance(m, nn.ReLU) for m in model.stem.modules())
    x = torch.randn(2, 3, 32, 32)
    out = model.stem(x)
    assert torch.allclose(out, model.stem.bn(model.stem.conv(x)))
    assert out.min() < 0


def test_forward_features_and_trunk_shapes():
    model = resnet26(7, width=0.25)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 7)
    assert model.features(x).shape == (2, 64)
    assert resnet26(0, width=0.25)(x).shape == (2, 64)


def test_channels_last_gives_the_same_output():
    model = resnet26(5, width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    assert torch.allclose(model(x.to(memory_format=torch.channels_last)), expected, atol=1e-5)


def test_plain_model_shares_exactly_its_3x3_weights():
    model = resnet26(5, width=0.25)
    shared, per_domain = split_shared_and_domain_parameters(model)
    assert sum(p.numel() for p in shared.values()) == conv3x3_weight_count(model)
    assert "classifier.weight" in per_domain and "head_bn.weight" in per_domain
    assert all(p.dim() == 4 for p in shared.values())
