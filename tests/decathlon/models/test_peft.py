"""The parameter-efficient modules against their papers' equations (docs/reference_peft.md)."""
import math

import pytest
import torch
from torch import nn

from decathlon.models import build_network
from decathlon.models.peft import (Adapter, LoRAConv2d, LoRALinear, PromptedViT, add_adapters, add_lora,
                                   merge_lora)

TINY_VIT = {"depth": 2, "embed_dim": 48, "num_heads": 2}


def _vit(seed=0):
    torch.manual_seed(seed)
    return build_network("timm:vit_tiny_patch16_224", 5, patch_size=8, arch_kwargs=TINY_VIT).eval()


def _randomise(*tensors):
    with torch.no_grad():
        for tensor in tensors:
            tensor.normal_(0, 0.5)


def test_lora_linear_is_w_plus_alpha_over_r_b_a_and_starts_as_w():
    torch.manual_seed(0)
    base = nn.Linear(6, 4).double()
    layer = LoRALinear(base, rank=2, alpha=6.0, dropout=0.0).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    assert layer.lora_A.shape == (1, 2, 6) and torch.all(layer.lora_B == 0)
    assert layer.lora_A.abs().max() <= 1 / math.sqrt(6)          # kaiming-uniform(a=sqrt(5)): 1/sqrt(fan_in)
    assert torch.equal(layer(x), base(x))
    _randomise(layer.lora_B)
    a, b = layer.lora_A[0], layer.lora_B[0]
    assert layer.scaling == 3.0
    assert torch.allclose(layer(x), x @ base.weight.T + base.bias + 3.0 * x @ a.T @ b.T)
    assert torch.allclose(layer.merged()(x), layer(x))
    assert not base.weight.requires_grad and not base.bias.requires_grad


def test_lora_on_q_and_v_leaves_the_k_slice_of_a_fused_qkv_unchanged():
    torch.manual_seed(0)
    base = nn.Linear(4, 12).double()
    layer = LoRALinear(base, rank=2, alpha=2.0, dropout=0.0, slices=(True, False, True)).double()
    _randomise(layer.lora_B)
    x = torch.randn(5, 4, dtype=torch.float64)
    out, plain = layer(x), base(x)
    assert torch.equal(out[:, 4:8], plain[:, 4:8])
    assert not torch.allclose(out[:, :4], plain[:, :4]) and not torch.allclose(out[:, 8:], plain[:, 8:])
    assert torch.all(layer.delta_weight()[4:8] == 0)
    assert torch.allclose(layer.merged()(x), out)


@pytest.mark.parametrize("kernel, stride", [(3, 2), (1, 1)])
def test_lora_conv_merges_into_one_kernel_of_rank_r(kernel, stride):
    torch.manual_seed(0)
    base = nn.Conv2d(5, 7, kernel, stride, kernel // 2, bias=False).double()
    layer = LoRAConv2d(base, rank=2, alpha=4.0, dropout=0.0).double()
    x = torch.randn(2, 5, 9, 9, dtype=torch.float64)
    assert torch.equal(layer(x), base(x))
    _randomise(layer.lora_B)
    delta = layer.delta_weight()
    assert torch.linalg.matrix_rank(delta.view(7, -1)) == 2
    assert torch.allclose(layer(x), nn.functional.conv2d(x, base.weight + delta, None, stride, kernel // 2))
    assert torch.allclose(layer.merged()(x), layer(x))


def test_lora_targets_wrap_the_named_layers_and_merge_back_to_the_backbones_keys():
    net = _vit()
    plain_keys = set(net.state_dict())
    assert add_lora(net, ["q", "v", "conv1x1", "conv3x3"], 4, 4.0, 0.0) == ["body.blocks.0.attn.qkv",
                                                                            "body.blocks.1.attn.qkv"]
    for layer in (net.body.blocks[0].attn.qkv, net.body.blocks[1].attn.qkv):
        _randomise(layer.lora_B)
    merged = merge_lora(net)
    x = torch.randn(2, 3, 32, 32)
    assert set(merged.state_dict()) == plain_keys
    assert torch.allclose(merged(x), net(x), atol=1e-5)
    assert not torch.allclose(merged(x), _vit()(x), atol=1e-3)   # the update is in the merged weights
    every = add_lora(_vit(), ["proj", "fc1", "fc2"], 2, 2.0, 0.0)
    assert len(every) == 6 and "body.patch_embed.proj" not in every


def test_lora_on_a_cnn_wraps_its_convolutions_not_its_classifier():
    torch.manual_seed(0)
    net = build_network("timm:resnet18", 3)
    wrapped = add_lora(net, ["conv3x3", "conv1x1"], 2, 2.0, 0.0)
    assert "body.conv1" not in wrapped                       # the 7x7 stem is neither
    assert "body.layer2.0.downsample.0" in wrapped and "body.layer1.0.conv1" in wrapped
    assert isinstance(net.classifier, nn.Linear)


@pytest.mark.parametrize("targets, words", [(["qq"], "expected names among"),
                                            (["fc1"], "match no layer of this backbone")])
def test_lora_targets_that_fit_nothing_are_one_clear_error(targets, words):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=words):
        add_lora(build_network("timm:resnet18", 3), targets, 2, 2.0, 0.0)


@pytest.mark.parametrize("mode", ["shallow", "deep"])
def test_vpt_without_prompts_is_the_backbone(mode):
    net = _vit()
    x = torch.randn(2, 3, 40, 48)
    expected = net(x)
    assert torch.equal(PromptedViT(net, 0, mode, 0.1).eval()(x), expected)


def _prompt_mask(prompted: PromptedViT, x: torch.Tensor) -> torch.Tensor:
    """(tokens, tokens) bool: every token may attend to every token but the prompts."""
    n = prompted.with_prompts(prompted.embed(x), 0).shape[1]
    allowed = torch.ones(n, n, dtype=torch.bool)
    prefix = prompted.net.body.num_prefix_tokens
    allowed[:, prefix:prefix + prompted.tokens] = False
    allowed[prefix:prefix + prompted.tokens, prefix:prefix + prompted.tokens] = True   # no empty row
    return allowed


@pytest.mark.parametrize("mode", ["shallow", "deep"])
def test_prompts_reach_the_features_only_through_attention(mode):
    net = _vit()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        backbone = net.body(x)
        prompted = PromptedViT(net, 3, mode, 0.0).eval()
        assert prompted.prompts.shape == (2 if mode == "deep" else 1, 3, 48)
        assert prompted.prompts.abs().max() <= math.sqrt(6 / (3 * 8 * 8 + 48))
        assert not torch.allclose(prompted.forward_tokens(x), backbone, atol=1e-4)
        masked = prompted.forward_tokens(x, attn_mask=_prompt_mask(prompted, x))
    assert torch.allclose(masked, backbone, atol=1e-5)


def test_deep_prompts_replace_the_previous_blocks_prompt_outputs():
    prompted = PromptedViT(_vit(), 2, "deep", 0.0).eval()
    tokens = prompted.with_prompts(prompted.embed(torch.randn(1, 3, 32, 32)), 0)
    after = prompted.net.body.blocks[0](tokens)
    second = prompted.with_prompts(after, 1)
    assert second.shape == tokens.shape
    assert torch.equal(second[0, 1:3], prompted.prompts[1])
    assert torch.equal(second[:, 3:], after[:, 3:]) and torch.equal(second[:, :1], after[:, :1])


def test_an_untrained_adaptformer_is_the_backbone_and_then_follows_the_codes_block():
    net, reference = _vit(), _vit()
    add_adapters(net.body, 8, 0.1, 0.0, "block")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(net(x), reference(x))
    adapted = net.body.blocks[0]
    _randomise(adapted.adapter.up.weight)
    tokens = torch.randn(2, 17, 48)
    b = reference.body.blocks[0]
    attended = tokens + b.attn(b.norm1(tokens))
    adapter = adapted.adapter
    expected = attended + b.mlp(b.norm2(attended)) + 0.1 * adapter.up(torch.relu(adapter.down(attended)))
    assert torch.allclose(adapted(tokens), expected, atol=1e-6)
    adapted.adapter_input = "mlp"
    expected = attended + b.mlp(b.norm2(attended)) + 0.1 * adapter.up(torch.relu(adapter.down(b.norm2(attended))))
    assert torch.allclose(adapted(tokens), expected, atol=1e-6)


def test_the_adapter_is_initialised_as_the_codes_lora_option():
    adapter = Adapter(48, 8, 0.1, 0.1)
    assert torch.all(adapter.up.weight == 0) and torch.all(adapter.up.bias == 0) and torch.all(adapter.down.bias == 0)
    assert adapter.down.weight.abs().max() <= 1 / math.sqrt(48) and adapter.down.weight.abs().sum() > 0


def test_vpt_and_adaptformer_refuse_a_non_vit_body():
    torch.manual_seed(0)
    net = build_network("timm:resnet18", 3)
    with pytest.raises(ValueError, match="needs a timm VisionTransformer body"):
        PromptedViT(net, 2, "deep", 0.0)
    with pytest.raises(ValueError, match="needs a timm VisionTransformer body"):
        add_adapters(net.body, 8, 0.1, 0.0, "block")
