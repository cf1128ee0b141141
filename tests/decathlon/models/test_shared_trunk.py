"""A policy trunk shared by several domains: one pass over their batches, per-domain BN,
exactly the per-domain gradients of separate passes; the whole model as one file."""
import pytest
import torch

from decathlon.models import SpotTuneNet, resnet26

WIDTH = 0.25
DOMAINS = ("aircraft", "dtd", "svhn")


def joint_net(trunk_bn="per_domain"):
    torch.manual_seed(0)
    net = SpotTuneNet(resnet26(5, WIDTH), policy="shared_trunk", trunk_bn=trunk_bn)
    for index, domain in enumerate(DOMAINS):
        net.add_domain(domain, 3 + index)
    return net.double()


def batches(seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(4 + i, 3, 24, 24, generator=generator, dtype=torch.float64) for i in range(len(DOMAINS))]


def losses(outputs):
    return sum(logits.square().mean() for logits, _ in outputs)


def test_one_trunk_pass_gives_every_domain_the_gradients_of_separate_passes():
    group_net, separate_net = joint_net(), joint_net()
    xs = batches()
    torch.manual_seed(7)
    losses(group_net.forward_group(xs, DOMAINS)).backward()
    torch.manual_seed(7)   # the same Gumbel noise, drawn in the same order
    losses([separate_net(x, domain) for x, domain in zip(xs, DOMAINS)]).backward()
    group, separate = dict(group_net.named_parameters()), dict(separate_net.named_parameters())
    checked = 0
    for name, parameter in separate.items():
        if parameter.grad is None:
            assert group[name].grad is None, name
            continue
        assert torch.allclose(group[name].grad, parameter.grad, rtol=1e-10, atol=1e-12), name
        checked += name.startswith("domains.")
    assert checked > 100   # every domain's stem, BNs, blocks, trunk BNs, head and classifier
    for name, buffer in separate_net.named_buffers():   # each domain's BN statistics its own
        assert torch.allclose(dict(group_net.named_buffers())[name], buffer, rtol=1e-10, atol=1e-12), name


def test_trunk_bn_per_domain_is_the_domains_own_and_shared_bn_pools_the_batch():
    per_domain, shared = joint_net(), joint_net("shared")
    assert all(net.domains[d].trunk_norms is not None for net in [per_domain] for d in DOMAINS)
    assert all(shared.domains[d].trunk_norms is None for d in DOMAINS)
    assert shared.domains["dtd"].get_extra_state()["trunk_bn"] == "shared"
    xs = batches()
    shared.forward_group(xs, DOMAINS)
    pooled = torch.cat(xs)
    first_conv = shared.policy_trunk.stem.conv(pooled)
    expected = 0.9 * torch.zeros(first_conv.shape[1], dtype=torch.float64) + 0.1 * first_conv.mean((0, 2, 3))
    assert torch.allclose(shared.policy_trunk.stem.bn.running_mean, expected)
    with pytest.raises(ValueError, match="trunk_bn must be one of"):
        SpotTuneNet(resnet26(5, WIDTH), policy="shared_trunk", trunk_bn="mixed")


def test_parameter_groups_put_the_trunk_and_the_domains_trunk_bn_with_the_policy():
    net = joint_net()
    groups = net.parameter_groups("dtd")
    policy = {id(p) for p in groups["policy"]}
    assert {id(p) for p in net.policy_trunk.parameters()} <= policy
    assert {id(p) for p in net.domains["dtd"].trunk_norms.parameters()} <= policy
    assert not policy & {id(p) for p in groups["network"]}


def test_model_file_round_trips_every_domain(tmp_path):
    net = joint_net().float().eval()
    path = tmp_path / "spottune_multidomain.pt"
    torch.save(net.checkpoint(augmentation="spottune"), path)
    loaded = SpotTuneNet.load(path)
    assert loaded.info == {"augmentation": "spottune"} and set(loaded.domains) == set(DOMAINS)
    x = torch.randn(5, 3, 24, 24)
    with torch.no_grad():
        for domain in DOMAINS:
            assert torch.equal(net(x, domain)[0], loaded(x, domain)[0]), domain
    (tmp_path / "other.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot read a SpotTune model file"):
        SpotTuneNet.load(tmp_path / "other.pt")
    torch.save({"kind": "backbone"}, tmp_path / "backbone.pt")
    with pytest.raises(ValueError, match="field 'kind' is 'backbone', expected 'spottune_multidomain'"):
        SpotTuneNet.load(tmp_path / "backbone.pt")


def test_batches_of_different_image_sizes_share_a_pass_per_size():
    net = joint_net().eval()
    generator = torch.Generator().manual_seed(3)
    xs = [torch.randn(3, 3, h, 24, generator=generator, dtype=torch.float64) for h in (24, 32, 24)]
    with torch.no_grad():
        together = net.group_policy_logits(xs, DOMAINS)
        apart = [net.policy_logits(x, domain) for x, domain in zip(xs, DOMAINS)]
    assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(together, apart))
