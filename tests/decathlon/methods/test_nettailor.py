"""NetTailor's semantics: pruning equals closing gates, frozen weights stay, the prune rule."""
import copy

import pytest
import torch

from decathlon.benchmark import hparams
from decathlon.methods import get_method
from decathlon.models import resnet26
from decathlon.models.nettailor import MaxPoolChannelsLast, NetTailorNet, prune_rule
from decathlon.models.resnet import pool_features

WIDTH = 0.125


def _student(seed=0, classes=3):
    torch.manual_seed(seed)
    net = NetTailorNet(resnet26(7, width=WIDTH), classes, max_skip=3)
    with torch.no_grad():   # gates and BN statistics away from their defaults
        for layer in net.layers:
            layer.gate_logits.normal_()
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


# Layer 0 has 1 proxy, layer 1 two, the others three; closes universal blocks 2 and 5.
MASKS = [[True, False], [True, True, False]] + [
    [i not in (2, 5), i % 2 == 0, True, i % 3 == 0] for i in range(2, 12)]


def test_pruned_student_gives_the_outputs_of_the_unpruned_one_with_those_gates_closed():
    net, x = _student(), torch.randn(4, 3, 64, 64)
    closed = copy.deepcopy(net)   # every branch computed; closed gates' logits at -inf
    with torch.no_grad():
        for layer, mask in zip(closed.layers, MASKS):
            layer.gate_logits[~torch.tensor(mask)] = float("-inf")
    pruned = copy.deepcopy(net)
    pruned.prune(MASKS)
    torch.testing.assert_close(pruned(x), closed(x), rtol=1e-5, atol=1e-6)
    assert pruned.layers[2].block is None and "2" not in pruned.layers[0].proxies
    kept = sum(p.numel() for p in pruned.parameters())
    assert kept < sum(p.numel() for p in net.parameters())
    assert pruned.domain_parameter_count() < net.domain_parameter_count()


def test_a_pruned_state_dict_restores_the_pruned_structure():
    hp = hparams("nettailor", "dtd", "cpu_demo", {"width": WIDTH})
    teacher = resnet26(3, width=WIDTH).state_dict()
    backbone = resnet26(7, width=WIDTH).state_dict()
    a = get_method("nettailor")(3, hp, backbone, teacher_state=teacher)
    a.net.prune(MASKS)
    b = get_method("nettailor")(3, hp, backbone, teacher_state=teacher)
    b.load_state_dict(a.state_dict())
    assert b.net.keep_masks() == MASKS and b.state_dict().keys() == a.state_dict().keys()
    assert {id(p) for g in b.optimizer.param_groups for p in g["params"]} <= {id(p) for p in b.parameters()}


def test_frozen_weights_do_not_move_in_either_phase():
    hp = hparams("nettailor", "dtd", "cpu_demo", {"width": WIDTH, "lr": 0.05, "prune_epoch": 1})
    torch.manual_seed(0)
    method = get_method("nettailor")(3, hp, resnet26(7, width=WIDTH).state_dict(),
                                     teacher_state=resnet26(3, width=WIDTH).state_dict())
    frozen = {n: p.detach().clone() for n, p in method.net.named_parameters() if not p.requires_grad}
    teacher = {n: p.detach().clone() for n, p in method.teacher.state_dict().items()}
    assert frozen and all(n.startswith("stem.") or ".block." in n for n in frozen)   # the universal blocks
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    gates = [layer.gate_logits.detach().clone() for layer in method.net.layers]
    for epoch in range(2):
        changed = method.begin_epoch(epoch)
        assert changed == (epoch == 1)
        for _ in range(2):
            logs = method.update(x, y)
        assert ("complexity" in logs) == (epoch == 0)
    assert method.pruned and not any(torch.equal(g, layer.gate_logits) for g, layer in zip(gates, method.net.layers)
                                     if len(layer.kept) > 1)
    for name, parameter in method.net.named_parameters():
        if name in frozen:
            assert torch.equal(parameter, frozen[name]), name
    assert all(torch.equal(v, teacher[k]) for k, v in method.teacher.state_dict().items())


def _distil_as_the_public_code(net, x):
    """The public code's forward (student_resnet_wide.py 132-145): every layer called twice,
    on the detached ends and on the ends."""
    ends, locals_ = [net.stem(x)], []
    for layer in net.layers:
        recent = ends[::-1][:net.max_skip]
        locals_.append(layer([e.detach() for e in recent]))
        ends.append(layer(recent))
    return net.classifier(pool_features(ends[-1], net.head_bn)), locals_


@pytest.mark.parametrize("pruned", [False, True])
def test_distilling_forward_runs_each_block_once_and_matches_two_calls(pruned):
    """Outputs, BN statistics and every gradient but the gates' bit for bit."""
    ours, x = _student().train(), torch.randn(6, 3, 64, 64)
    if pruned:
        ours.prune(MASKS)
    theirs = copy.deepcopy(ours)
    calls = []
    for layer in ours.layers:
        if layer.block is not None:
            layer.block.register_forward_hook(lambda *_: calls.append(1))
    results = []
    for net, forward in ((ours, lambda n: n(x, local=True)), (theirs, lambda n: _distil_as_the_public_code(n, x))):
        logits, locals_ = forward(net)
        (logits.square().sum() + sum(o.mean() for o in locals_)).backward()
        results.append((logits, locals_, {n: p.grad for n, p in net.named_parameters() if p.grad is not None},
                        net.state_dict()))
    assert len(calls) == sum(layer.block is not None for layer in ours.layers)
    (logits_a, locals_a, grads_a, state_a), (logits_b, locals_b, grads_b, state_b) = results
    assert torch.equal(logits_a, logits_b) and all(map(torch.equal, locals_a, locals_b))
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:   # the gates sum the same terms in another order: equal to rounding
        if name.endswith("gate_logits"):
            torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-6, atol=1e-7)
        else:
            assert torch.equal(grads_a[name], grads_b[name]), name
    assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    moved = [k for k in state_a if ".block." in k and k.endswith("running_mean")]
    assert moved and not torch.equal(state_a[moved[0]], _student().state_dict()[moved[0]])


def test_prune_rule_closes_the_weakest_blocks_and_proxies_under_the_threshold():
    net = _student()
    with torch.no_grad():
        for i, layer in enumerate(net.layers):
            layer.gate_logits.copy_(torch.tensor([float(i)] + [-1.0, 0.5, -9.0][:len(layer.gate_logits) - 1]))
    masks = prune_rule(net, universal=3, threshold=0.05)
    assert [m[0] for m in masks] == [False, False, False] + [True] * 9   # the three lowest block gates
    gates = [layer.gates() for layer in net.layers]
    for mask, g in zip(masks[3:], gates[3:]):
        assert mask[1:] == [bool(v > 0.05) for v in g[1:]]
    assert all(any(mask) for mask in masks)   # a layer left with nothing keeps its strongest branch


def test_nettailor_without_a_teacher_is_refused_by_name():
    hp = hparams("nettailor", "dtd", "cpu_demo", {"width": WIDTH})
    with pytest.raises(ValueError, match="--teacher"):
        get_method("nettailor")(3, hp, resnet26(7, width=WIDTH).state_dict())


def test_the_proxies_channels_last_max_pool_equals_torchs():
    x = torch.randn(4, 8, 16, 16, requires_grad=True)
    ours, theirs = MaxPoolChannelsLast(3, 2, 1)(x), torch.nn.MaxPool2d(3, 2, 1)(x)
    assert torch.equal(ours, theirs) and ours.is_contiguous()
    (grad_ours,), (grad_theirs,) = (torch.autograd.grad(out.square().sum(), x) for out in (ours, theirs))
    assert torch.equal(grad_ours, grad_theirs)
