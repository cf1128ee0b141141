"""SpotTune: policy, two-path blocks, routed inference, per-domain files."""
import copy
import io

import pytest
import torch
from torch import nn

from decathlon.models import (POLICY_KINDS, PolicyNet, SpotTuneNet, budget_loss, decide,
                              parameter_count, resnet26)
from decathlon.models.spottune import RoutingPlan

WIDTH = 0.25


def pretrained_backbone(num_classes=5):
    """A width-0.25 ResNet-26 with non-trivial BN statistics, as if pretrained."""
    torch.manual_seed(0)
    backbone = resnet26(num_classes, WIDTH)
    for bn in (m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.data.uniform_(0.5, 1.5)
    return backbone.eval()


def perturb_tuned_blocks(net, domain):
    with torch.no_grad():
        for block in net.domains[domain].tuned_blocks.values():
            for parameter in block.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))


def make_net(policy="per_domain", domains=("aircraft",)):
    net = SpotTuneNet(pretrained_backbone(), policy=policy)
    for name in domains:
        net.add_domain(name, 5, copy_classifier=True)
        perturb_tuned_blocks(net, name)
    return net


def images(n=4):
    return torch.randn(n, 3, 32, 32)


def test_policy_network_is_a_one_block_per_stage_resnet():
    policy = PolicyNet(num_blocks=12, width=WIDTH)
    assert len(policy.trunk.blocks) == 3
    logits = policy(images())
    assert logits.shape == (4, 12, 2)
    for mode in ("gumbel", "sample", "argmax"):
        decisions = decide(logits, mode)
        assert decisions.shape == (4, 12)
        assert set(decisions.unique().tolist()) <= {0.0, 1.0}


def test_all_frozen_reproduces_the_pretrained_backbone():
    net = make_net().eval()
    x = images()
    logits, decisions = net(x, "aircraft", mode="frozen")
    assert torch.count_nonzero(decisions) == 0
    assert torch.allclose(logits, net.backbone(x), atol=1e-5)


@pytest.mark.parametrize("routed", [False, True])
def test_all_tuned_reproduces_the_fine_tuned_copy(routed):
    net = make_net().eval()
    branch = net.domains["aircraft"]
    fine_tuned = copy.deepcopy(net.backbone)
    fine_tuned.stem, fine_tuned.head_bn, fine_tuned.classifier = (
        branch.stem, branch.head_bn, branch.classifier)
    fine_tuned.blocks = nn.ModuleList(branch.tuned_block(i) for i in range(12))
    x = images()
    logits, decisions = net(x, "aircraft", mode="tuned", routed=routed)
    assert bool(decisions.all())
    assert torch.allclose(logits, fine_tuned(x), atol=1e-5)
    assert not torch.allclose(logits, net.backbone(x), atol=1e-3)


@pytest.mark.parametrize("policy", POLICY_KINDS)
def test_policy_gets_a_straight_through_gradient(policy):
    net = make_net(policy).train()
    logits, decisions = net(images(), "aircraft")
    assert decisions.requires_grad
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    policy_params = net.parameter_groups("aircraft")["policy"]
    assert policy_params and any(p.grad is not None and p.grad.abs().sum() > 0
                                 for p in policy_params)


def test_routed_inference_equals_dense_and_skips_unchosen_branches():
    net = make_net().eval()
    net.prune_unused_blocks("aircraft", keep=range(1, 12))
    x = images(8)
    torch.manual_seed(3)
    dense, dense_decisions = net(x, "aircraft", mode="random", routed=False)
    batch_sizes = {}
    for index in range(1, 12):
        net.domains["aircraft"].tuned_block(index).register_forward_hook(
            lambda module, args, output, index=index: batch_sizes.update({index: len(args[0])}))
    torch.manual_seed(3)
    routed, routed_decisions = net(x, "aircraft", mode="random", routed=True)
    assert torch.equal(dense_decisions, routed_decisions)
    assert torch.count_nonzero(routed_decisions[:, 0]) == 0  # block 0 was pruned
    chosen = routed_decisions.sum(0).long().tolist()
    assert any(0 < count < 8 for count in chosen)
    assert batch_sizes == {i: count for i, count in enumerate(chosen) if count > 0}
    assert torch.allclose(routed, dense, atol=1e-5)


def test_evaluation_defaults_to_deterministic_routed_argmax():
    net = make_net().eval()
    x = images()
    first, first_decisions = net(x, "aircraft")
    second, second_decisions = net(x, "aircraft")
    assert torch.equal(first, second) and torch.equal(first_decisions, second_decisions)
    policy_choice = decide(net.policy_logits(x, "aircraft"), "argmax")
    assert torch.equal(first_decisions, policy_choice)
    _, sampled = net(x, "aircraft", mode="sample")
    assert set(sampled.unique().tolist()) <= {0.0, 1.0}


def test_routing_is_refused_where_it_would_change_training():
    net = make_net().train()
    with pytest.raises(ValueError):
        net(images(), "aircraft", mode="random", routed=True)


def test_backbone_is_frozen_and_stored_once():
    domains = ("aircraft", "dtd", "svhn")
    net = make_net(domains=domains).train()
    for name in domains:
        logits, _ = net(images(), name)
        logits.sum().backward()
    backbone_params = list(net.backbone.parameters())
    assert all(not p.requires_grad and p.grad is None for p in backbone_params)
    backbone_storage = {p.data_ptr() for p in backbone_params}
    for name in domains:
        branch = net.domains[name]
        assert not backbone_storage & {p.data_ptr() for p in branch.parameters()}
        assert all(p.requires_grad for p in branch.parameters())
    assert parameter_count(net) == net.shared_parameter_count() + sum(
        net.domain_parameter_count(name) for name in domains)
    assert all(not key.startswith("backbone.") for key in net.domain_state_dict("dtd"))


@pytest.mark.parametrize("policy", POLICY_KINDS)
def test_domain_files_rebuild_the_model(policy):
    net = make_net(policy, domains=("aircraft", "dtd")).eval()
    net.prune_unused_blocks("dtd", keep=[2, 7])
    x = images()
    expected = {name: net(x, name) for name in ("aircraft", "dtd")}
    files = {}
    for name, state in [("shared", net.shared_state_dict())] + [
            (name, net.domain_state_dict(name)) for name in ("aircraft", "dtd")]:
        files[name] = io.BytesIO()
        torch.save(state, files[name])
        files[name].seek(0)
    fresh = SpotTuneNet(resnet26(5, WIDTH), policy=policy)
    fresh.load_shared_state_dict(torch.load(files["shared"]))
    for name in ("aircraft", "dtd"):
        fresh.load_domain_state_dict(name, torch.load(files[name]))
    fresh.eval()
    assert fresh.domains["dtd"].stored_tuned_blocks() == [2, 7]
    for name, (logits, decisions) in expected.items():
        new_logits, new_decisions = fresh(x, name)
        assert torch.equal(new_decisions, decisions)
        assert torch.allclose(new_logits, logits, atol=1e-6)


def test_global_policy_prunes_blocks_it_never_chooses():
    net = make_net("global").eval()
    with torch.no_grad():
        net.domains["aircraft"].policy.logits.copy_(torch.tensor([[1.0, 0.0]] * 12))
        net.domains["aircraft"].policy.logits[[0, 3]] = torch.tensor([0.0, 1.0])
    x = images()
    before, decisions = net(x, "aircraft")
    size_before = net.relative_size()
    assert net.prune_unused_blocks("aircraft") == [0, 3]
    after, pruned_decisions = net(x, "aircraft")
    assert torch.equal(decisions, pruned_decisions)
    assert torch.allclose(before, after, atol=1e-6)
    assert net.relative_size() < size_before


def test_budget_loss_is_zero_at_budget_and_positive_otherwise():
    at_budget = torch.zeros(6, 12)
    at_budget[:, :4] = 1
    assert budget_loss(at_budget, budget=4, entropy_weight=1.0) == pytest.approx(0, abs=1e-4)
    assert budget_loss(at_budget, budget=6) == pytest.approx(4.0)
    mixed = at_budget.clone()
    mixed[:3, 4] = 1
    mixed[3:, 0] = 0  # still 4 blocks per image, but two blocks used half the time
    assert budget_loss(mixed, budget=4) == pytest.approx(0, abs=1e-6)
    assert budget_loss(mixed, budget=4, entropy_weight=1.0) > 1.0
    usage = mixed.clone().requires_grad_(True)
    budget_loss(usage, budget=3, entropy_weight=0.1).backward()
    assert torch.isfinite(usage.grad).all()


def fixed_decisions(net, matrix):
    """Make every forward of `net` use the (N, 12) decision matrix `matrix`."""
    net.decisions = lambda x, domain, mode, policy_logits=None: matrix


def mixed_decisions(n=8):
    """Columns: all frozen, all fine-tuned, mixed, repeated (no reorder needed), pruned."""
    torch.manual_seed(5)
    matrix = torch.bernoulli(torch.full((n, 12), 0.5))
    matrix[:, 0] = 0
    matrix[:, 1] = 1
    matrix[:, 2] = torch.tensor([1, 0] * (n // 2))
    matrix[:, 3] = matrix[:, 2]
    matrix[:, 4] = matrix[:, 2]
    return matrix


def test_routed_equals_dense_for_every_kind_of_block_decision():
    net = make_net().eval()
    net.prune_unused_blocks("aircraft", keep=[i for i in range(12) if i != 6])
    matrix = mixed_decisions()
    matrix[:, 6] = 0  # block 6 was pruned: its decisions are always frozen
    fixed_decisions(net, matrix)
    x = images(8)
    with torch.no_grad():
        routed, _ = net(x, "aircraft", routed=True)
        dense, _ = net(x, "aircraft", routed=False)
        single = []  # image by image: no split, no reordering
        for i in range(8):
            fixed_decisions(net, matrix[i:i + 1])
            single.append(net(x[i:i + 1], "aircraft", routed=True)[0])
        single = torch.cat(single)
    assert torch.allclose(routed, dense, atol=1e-5)
    assert torch.allclose(routed, single, atol=1e-5)


def test_routing_plan_gathers_only_when_the_order_changes():
    matrix = mixed_decisions()
    plan = RoutingPlan(matrix, [True] * 12)
    assert plan.counts == matrix.sum(0).long().tolist()
    assert 2 in plan.gathers and 3 not in plan.gathers and 4 not in plan.gathers
    assert 0 not in plan.gathers and 1 not in plan.gathers
    uniform = RoutingPlan(torch.ones(8, 12), [True] * 12)
    assert not uniform.gathers and uniform.restore_index is None
    pruned = RoutingPlan(matrix, [i != 2 for i in range(12)])
    assert pruned.counts[2] == 0 and 2 not in pruned.gathers


def test_routed_inference_keeps_channels_last():
    net = make_net().eval()
    fixed_decisions(net, mixed_decisions())
    net = net.to(memory_format=torch.channels_last)
    net.fold_routed = False   # the module path, seen by the hooks
    layouts = []
    for index in range(12):
        net.domains["aircraft"].tuned_block(index).register_forward_pre_hook(
            lambda module, args: layouts.append(
                args[0].is_contiguous(memory_format=torch.channels_last)))
    x = images(8).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        routed, _ = net(x, "aircraft", routed=True)
        dense, _ = net(x, "aircraft", routed=False)
    assert layouts and all(layouts)
    assert torch.allclose(routed, dense, atol=1e-5)
