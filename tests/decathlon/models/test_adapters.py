"""Residual adapters (Rebuffi et al. 2017 series, 2018 parallel) on ResNet-26."""
import pytest
import torch

from decathlon.models import (ConvBN, adapter_weight_count, conv3x3_weight_count,
                              freeze_shared_convs, resnet26, split_shared_and_domain_parameters)


def test_parallel_adapter_weights_match_the_paper():
    model = resnet26(10, adapter="parallel")
    assert adapter_weight_count(model) == 645_216
    assert round(100 * 645_216 / conv3x3_weight_count(model), 1) == 11.1


def test_series_adapters_adapt_all_25_convolutions():
    model = resnet26(10, adapter="series")
    units = [m for m in model.modules() if isinstance(m, ConvBN)]
    assert len(units) == 25 and all(u.adapter is not None for u in units)
    # one C x C 1x1 conv per 3x3 conv: 32^2 + 8 * (64^2 + 128^2 + 256^2)
    assert adapter_weight_count(model) == 32**2 + 8 * (64**2 + 128**2 + 256**2)


def test_parallel_adapter_follows_the_stride_of_its_conv():
    model = resnet26(10, width=0.25, adapter="parallel")
    for unit in (m for m in model.modules() if isinstance(m, ConvBN)):
        assert unit.adapter.stride == unit.conv.stride
        assert unit.adapter.kernel_size == (1, 1)


@pytest.mark.parametrize("adapter", ["series", "parallel"])
def test_zero_adapters_leave_the_pretrained_network_unchanged(adapter):
    plain = resnet26(4, width=0.25).eval()
    adapted = resnet26(4, width=0.25, adapter=adapter).eval()
    missing, unexpected = adapted.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(".adapter." in key for key in missing)
    for unit in (m for m in adapted.modules() if isinstance(m, ConvBN)):
        conv = unit.adapter.conv if adapter == "series" else unit.adapter
        torch.nn.init.zeros_(conv.weight)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(adapted(x), plain(x), atol=1e-6)


@pytest.mark.parametrize("adapter", ["series", "parallel"])
def test_only_3x3_weights_are_shared_and_frozen(adapter):
    model = resnet26(4, width=0.25, adapter=adapter)
    shared, per_domain = split_shared_and_domain_parameters(model)
    assert sum(p.numel() for p in shared.values()) == conv3x3_weight_count(model)
    assert any(".adapter." in name for name in per_domain)
    freeze_shared_convs(model)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is None for p in shared.values())
    assert all(p.grad is not None for p in per_domain.values())


def test_unknown_adapter_kind_is_refused():
    with pytest.raises(ValueError):
        resnet26(4, adapter="serial")
