"""SpotTune over the residual blocks of timm backbones, against the paper's block equation."""
import copy

import pytest
import torch
import torch.nn.functional as F

from decathlon.models import BlockSpotTuneNet, build_network, residual_body

TINY = {
    "vit": ("timm:vit_tiny_patch16_224", {"patch_size": 8, "arch_kwargs": {"depth": 2, "embed_dim": 48, "num_heads": 2}}),
    "resnet": ("timm:resnet18", {"arch_kwargs": {"layers": [1, 1, 1, 1], "channels": [8, 16, 24, 32], "stem_width": 8}}),
    "convnext": ("timm:convnext_atto", {"arch_kwargs": {"depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32]}}),
    "eva": ("timm:eva02_tiny_patch14_224", {"patch_size": 8, "arch_kwargs": {"depth": 2, "embed_dim": 48,
                                                                               "num_heads": 2}}),
}


def _perturbed(module, seed):
    """Every parameter and BN statistic moved off its value (variances kept positive)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = list(module.named_parameters()) + [(n, b) for n, b in module.named_buffers()
                                                 if n.endswith(("running_mean", "running_var"))]
    with torch.no_grad():
        for name, tensor in tensors:
            tensor.add_(0.1 * torch.randn(tensor.shape, generator=generator))
            if name.endswith("running_var"):
                tensor.abs_()
    return module


def _spottune(family, policy="per_domain"):
    arch, kwargs = TINY[family]
    torch.manual_seed(0)
    net = build_network(arch, 5, **kwargs)
    spottune = BlockSpotTuneNet(net, policy=policy, policy_width=0.125, arch=arch)
    spottune.add_domain("d", 5)
    return net, spottune


def _reference(net, spottune, tuned):
    """The plain timm network with the domain's stem and norm tensors, and (tuned) the
    domain's fine-tuned copies in place of its blocks."""
    ref = copy.deepcopy(net)
    branch = spottune.domains["d"]
    own = {name[len("body."):]: tensor for name, tensor in branch.overrides().items()}
    ref.body.load_state_dict(own, strict=False)
    if tuned:
        for index, block in enumerate(residual_body(ref.body).blocks()):
            block.load_state_dict(branch.tuned_block(index).state_dict())
    return ref.eval()


@pytest.mark.parametrize("family", list(TINY))
def test_all_frozen_is_the_backbone_and_all_tuned_is_the_network_of_tuned_copies(family):
    net, spottune = _spottune(family)
    net.eval(), spottune.eval()
    _perturbed(spottune.domains["d"].tuned_blocks, 1)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        frozen = spottune.features(x, "d", spottune.decisions(x, "d", "frozen"))
        tuned = spottune.features(x, "d", spottune.decisions(x, "d", "tuned"))
        assert torch.allclose(frozen, net.forward_features(x), atol=1e-5)   # the norms as pretrained
        assert not torch.allclose(tuned, frozen, atol=1e-3)
        assert torch.allclose(tuned, _reference(net, spottune, tuned=True).forward_features(x), atol=1e-5)
        _perturbed(spottune.domains["d"].own, 2)   # the domain's own stem and norms: the frozen path's too
        frozen = spottune.features(x, "d", spottune.decisions(x, "d", "frozen"))
        assert torch.allclose(frozen, _reference(net, spottune, tuned=False).forward_features(x), atol=1e-5)
        assert not torch.allclose(frozen, net.forward_features(x), atol=1e-3)


@pytest.mark.parametrize("family", ["vit", "resnet"])
def test_mixed_decisions_per_image_routed_equal_dense(family):
    net, spottune = _spottune(family)
    spottune.eval()
    _perturbed(spottune.domains["d"].tuned_blocks, 1)
    x = torch.randn(6, 3, 64, 64)
    decisions = torch.bernoulli(torch.full((6, spottune.num_blocks), 0.5), generator=torch.Generator().manual_seed(3))
    decisions[0], decisions[1] = 0, 1
    with torch.no_grad():
        routed = spottune.features(x, "d", decisions)
        dense = spottune.features(x, "d", decisions.clone().requires_grad_(True))
        tuned = spottune.features(x[1:2], "d", spottune.decisions(x[1:2], "d", "tuned"))
    assert torch.allclose(routed, dense, atol=1e-5)
    assert torch.allclose(dense[1:2], tuned, atol=1e-5) and torch.allclose(dense[0], net.eval().forward_features(x)[0],
                                                                          atol=1e-5)


@pytest.mark.parametrize("family", ["vit", "resnet"])
def test_gradients_reach_the_policy_through_the_decisions_and_never_the_backbone(family):
    _, spottune = _spottune(family)
    _perturbed(spottune.domains["d"].tuned_blocks, 1)   # equal copies: the decisions change nothing
    spottune.train()
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    logits, decisions = spottune(x, "d", "gumbel")
    assert decisions.requires_grad and set(decisions.unique().tolist()) <= {0.0, 1.0}
    F.cross_entropy(logits, y).backward()
    branch = spottune.domains["d"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in branch.policy.parameters())
    assert all(p.grad is not None for p in branch.own.parameters())
    assert all(not p.requires_grad and p.grad is None for p in spottune.backbone.parameters())


def test_the_domain_file_rebuilds_the_domain_and_pruned_blocks_take_the_frozen_path():
    net, spottune = _spottune("vit", policy="global")
    with torch.no_grad():
        spottune.domains["d"].policy.logits.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    _perturbed(spottune.domains["d"].tuned_blocks, 1)
    assert spottune.prune_unused_blocks("d") == [0]
    _, other = _spottune("vit", policy="global")
    del other.domains["d"]
    other.load_domain_state_dict("d", spottune.domain_state_dict("d"))
    x = torch.randn(2, 3, 64, 64)
    spottune.eval(), other.eval()
    with torch.no_grad():
        assert torch.equal(spottune(x, "d", "tuned")[0], other(x, "d", "tuned")[0])
        assert other(x, "d", "tuned")[1].tolist() == [[1.0, 0.0]] * 2
    assert spottune.domain_parameter_count("d") < _spottune("vit", policy="global")[1].domain_parameter_count("d")


def test_a_backbone_without_known_residual_blocks_is_one_clear_error():
    body = build_network("timm:mobilenetv3_small_050", 3).body
    with pytest.raises(ValueError, match="backbone arch 'timm:mobilenetv3_small_050' is a timm.models.mobilenetv3"
                                         r".*supported: ViT/DeiT/EVA .*ResNet.*ConvNeXt"):
        residual_body(body, "timm:mobilenetv3_small_050")
