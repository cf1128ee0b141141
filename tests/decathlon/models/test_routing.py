"""Routed SpotTune inference: the shortcut added once, folded BN layers, the default rule."""
import types

import pytest
import torch

from decathlon.models.routing import ROUTED_MIN_BATCH, RoutingPlan, routing_pays

DOMAIN = "aircraft"


def images(n=8, memory_format=torch.contiguous_format):
    x = torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(n))
    return x.contiguous(memory_format=memory_format)


def assert_agree(routed, dense, folded):
    """Exact arithmetic up to the order of operations; folded BN layers: to about 1e-6
    of the logits' scale (this test net's logits reach about 150)."""
    scale = float(dense.abs().max())
    tolerance = 1e-6 * scale if folded else 1e-5
    torch.testing.assert_close(routed, dense, rtol=0, atol=tolerance)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_routed_equals_dense(spottune_net, decision_matrix, fix_decisions, fused, fold,
                             memory_format):
    net = spottune_net(memory_format=memory_format).eval()
    net.fused, net.fold_routed = fused, fold
    net.prune_unused_blocks(DOMAIN, keep=[i for i in range(12) if i != 6])
    matrix = decision_matrix()
    matrix[:, 6] = 0   # pruned: always frozen
    fix_decisions(net, matrix)
    x = images(memory_format=memory_format)
    with torch.no_grad():
        routed, _ = net(x, DOMAIN, routed=True)
        dense, _ = net(x, DOMAIN, routed=False)
    assert_agree(routed, dense, fold)


def test_folded_routing_runs_no_block_module_and_keeps_channels_last(spottune_net,
                                                                     decision_matrix,
                                                                     fix_decisions):
    net = spottune_net(memory_format=torch.channels_last).eval()
    net.fold_routed = True
    fix_decisions(net, decision_matrix())
    called, layouts = [], []
    for block in net.domains[DOMAIN].tuned_blocks.values():
        block.register_forward_pre_hook(lambda module, args: called.append(module))
    for block in net.backbone.blocks:
        block.shortcut.register_forward_hook(
            lambda module, args, out: layouts.append(out.is_contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        net(images(memory_format=torch.channels_last), DOMAIN, routed=True)
    assert not called
    assert len(layouts) == 12 and all(layouts)   # the shortcut runs once per block
    with torch.enable_grad():   # with gradients the blocks run as modules
        net(images(), DOMAIN, routed=True)
    assert called


def test_routed_blocks_add_the_shortcut_once_for_both_branches(spottune_net, decision_matrix,
                                                               fix_decisions):
    net = spottune_net().eval()
    fix_decisions(net, decision_matrix())
    calls = []
    for block in net.backbone.blocks:
        block.shortcut.register_forward_hook(lambda module, args, out: calls.append(len(out)))
    with torch.no_grad():
        net(images(), DOMAIN, routed=True)
    assert calls == [8] * 12


def test_routing_plan_sends_all_or_nothing_blocks_to_one_branch(decision_matrix):
    plan = RoutingPlan(decision_matrix(), [True] * 12)
    h = torch.randn(8, 4, 2, 2)
    frozen, tuned = (lambda t: t * 0 - 1), (lambda t: t * 0 + 1)   # ReLU leaves 0 or 2
    shortcut = torch.ones_like
    assert torch.equal(plan.run(0, h, tuned, frozen, shortcut), torch.zeros_like(h))
    assert torch.equal(plan.run(1, h, tuned, frozen, shortcut), torch.full_like(h, 2))
    split = plan.run(2, h, tuned, frozen, shortcut)
    assert split[:4].eq(2).all() and split[4:].eq(0).all()   # tuned images first


def test_default_rule_by_device_and_batch_size(spottune_net, decision_matrix, fix_decisions):
    assert routing_pays(torch.empty(1, 3, 8, 8))
    assert ROUTED_MIN_BATCH["cuda"] is None   # measured on an H200: dense evaluates faster there
    for n in (1, 128, 4096):
        assert not routing_pays(types.SimpleNamespace(device=torch.device("cuda"), shape=(n, 3, 8, 8)))
    net = spottune_net().eval()
    fix_decisions(net, decision_matrix())
    net.fold_routed = False   # run the block modules, so that a hook sees them
    ran = []
    net.domains[DOMAIN].tuned_block(2).register_forward_hook(
        lambda module, args, out: ran.append(len(args[0])))
    with torch.no_grad():
        net(images(), DOMAIN)   # on a CPU: routed, block 2 runs its 4 fine-tuned images
    assert ran == [4]
    net.fold_routed = None    # the default on a CPU too: folded, as function calls, no module runs
    with torch.no_grad():
        folded = net(images(), DOMAIN)[0]
        dense = net(images(), DOMAIN, routed=False)[0]
    assert ran == [4] and torch.allclose(folded, dense, rtol=1e-4, atol=1e-5)
