"""Piggyback's masked convolution: threshold, straight-through gradient, packing."""
import torch
import torch.nn.functional as F
from torch import nn

from decathlon.models import resnet26
from decathlon.models.masked import (MaskedConv2d, binary_mask, mask_convolutions, masked_convolutions,
                                     packed_masks, unpack_mask)


def _masked(scale=1e-2, threshold=5e-3):
    torch.manual_seed(0)
    return MaskedConv2d.from_conv(nn.Conv2d(4, 6, 3, 2, 1, bias=False), scale, threshold)


def test_the_mask_is_one_strictly_above_the_threshold():
    scores = torch.tensor([-1.0, 0.0, 5e-3, 5.0001e-3, 1e-2])
    assert binary_mask(scores, 5e-3).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]   # <= threshold: 0, as Binarizer


def test_a_new_mask_keeps_every_weight_and_gives_the_convolution_exactly():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, 2, 1, bias=False)
    masked = MaskedConv2d.from_conv(conv, 1e-2, 5e-3)
    x = torch.randn(2, 4, 9, 9)
    assert torch.equal(masked.mask(), torch.ones_like(conv.weight))
    assert torch.equal(masked(x), conv(x))
    assert not masked.weight.requires_grad and masked.mask_scores.requires_grad


def test_the_scores_get_the_masked_weights_gradient_times_the_weight():
    masked = _masked()
    with torch.no_grad():
        masked.mask_scores[0, 0, 0, 0] = -1.0   # one entry masked off: its gradient still flows
    x = torch.randn(2, 4, 9, 9)
    masked(x).square().sum().backward()
    effective = (masked.weight * masked.mask()).detach().requires_grad_(True)
    F.conv2d(x, effective, None, 2, 1).square().sum().backward()
    assert torch.allclose(masked.mask_scores.grad, effective.grad * masked.weight, atol=1e-6)
    assert masked.mask_scores.grad[0, 0, 0, 0] != 0
    assert masked.weight.grad is None


def test_every_convolution_of_a_resnet26_is_masked_and_outputs_stay_the_same():
    torch.manual_seed(0)
    plain = resnet26(5, width=0.125).eval()
    masked = resnet26(5, width=0.125)
    masked.load_state_dict(plain.state_dict())
    names = mask_convolutions(masked, 1e-2, 5e-3)
    assert len(names) == len(masked_convolutions(masked)) == 25   # the stem and 24 block convolutions
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(masked.eval()(x), plain(x))


def test_packed_masks_hold_one_bit_per_weight_and_unpack_to_the_mask():
    masked = _masked()
    with torch.no_grad():
        masked.mask_scores.copy_(torch.randn_like(masked.mask_scores) * 1e-2)
    net = nn.Sequential(masked)
    entry = packed_masks(net)["0"]
    assert entry["bits"].dtype == torch.uint8 and entry["bits"].numel() == -(-masked.weight.numel() // 8)
    assert torch.equal(unpack_mask(entry), masked.mask().bool())
