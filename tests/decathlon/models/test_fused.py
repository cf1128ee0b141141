"""SpotTune's fused two-branch blocks against today's two separate blocks (fused=False)."""
import copy
from collections import Counter

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

DOMAIN = "aircraft"


def images(n=4, dtype=torch.float32, memory_format=torch.contiguous_format):
    x = torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(n))
    return x.to(dtype).contiguous(memory_format=memory_format)


@pytest.fixture
def twin_nets(spottune_net):
    """``twins(...)``: (fused, unfused) copies of one ``spottune_net(...)``."""

    def twins(*args, **kwargs):
        fused = spottune_net(*args, **kwargs)
        unfused = copy.deepcopy(fused)
        unfused.fused = False
        return fused, unfused

    return twins


def training_step(net, x, seed=1):
    """Gumbel forward (seeded), a random cotangent on the logits, backward."""
    torch.manual_seed(seed)
    logits, decisions = net(x, DOMAIN)
    cotangent = torch.randn(logits.shape, generator=torch.Generator().manual_seed(0),
                            dtype=logits.dtype)
    (logits * cotangent).sum().backward()
    return logits, decisions


def assert_same_training(fused, unfused, x, rtol, atol):
    x_fused, x_unfused = (x.clone().requires_grad_(True) for _ in range(2))
    logits, decisions = training_step(fused, x_fused)
    expected, expected_decisions = training_step(unfused, x_unfused)
    assert torch.equal(decisions, expected_decisions)
    torch.testing.assert_close(logits, expected, rtol=rtol, atol=atol)
    torch.testing.assert_close(x_fused.grad, x_unfused.grad, rtol=rtol, atol=atol)
    for (name, p), q in zip(fused.named_parameters(), unfused.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if q.grad is not None:
            assert p.grad.dtype == p.dtype, name
            torch.testing.assert_close(p.grad, q.grad, rtol=rtol, atol=atol, msg=name)
    for (name, a), b in zip(fused.state_dict().items(), unfused.state_dict().values()):
        if torch.is_tensor(a):   # running statistics and num_batches_tracked of both halves
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("policy", ["per_domain", "global"])
def test_fused_training_equals_two_branches_in_float64(twin_nets, memory_format, policy):
    fused, unfused = twin_nets(policy, torch.float64, memory_format)
    fused.train(), unfused.train()
    x = images(8, torch.float64, memory_format)
    for _ in range(2):   # the second step starts from updated running statistics
        assert_same_training(fused, unfused, x, rtol=1e-10, atol=1e-12)


def test_fused_float32_training_and_straight_through_gradient(twin_nets, decision_matrix,
                                                              fix_decisions):
    fused, unfused = twin_nets()
    fused.train(), unfused.train()
    matrix = decision_matrix()
    grads = []
    for net in (fused, unfused):
        decisions = matrix.clone().requires_grad_(True)
        fix_decisions(net, decisions)
        logits, _ = net(images(8), DOMAIN)
        logits.square().sum().backward()
        grads.append(decisions.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)
    assert grads[0].abs().sum() > 0


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fused_dense_evaluation_equals_two_branches(twin_nets, decision_matrix, fix_decisions,
                                                    memory_format):
    fused, unfused = twin_nets(memory_format=memory_format)
    fused.eval(), unfused.eval()
    fix_decisions(fused, decision_matrix())
    fix_decisions(unfused, decision_matrix())
    x = images(8, memory_format=memory_format)
    with torch.no_grad():
        logits, _ = fused(x, DOMAIN, routed=False)
        expected, _ = unfused(x, DOMAIN, routed=False)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_fused_bf16_autocast_matches_two_branches(twin_nets):
    fused, unfused = twin_nets()
    fused.train(), unfused.train()
    x = images(8)
    outputs = []
    for net in (fused, unfused):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs.append(training_step(net, x)[0].float())
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0.05, atol=0.05)
    for p, q in zip(fused.parameters(), unfused.parameters()):
        assert (p.grad is None) == (q.grad is None)
        assert p.grad is None or p.grad.dtype == torch.float32


class OpRecorder(TorchDispatchMode):
    """Records every aten op (forward and backward) with its arguments' shapes."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((func, args))
        return func(*args, **(kwargs or {}))


def host_synchronising(func, args) -> bool:
    """Ops that read a tensor's values on the host or give data-dependent shapes."""
    if {torch.Tag.data_dependent_output, torch.Tag.dynamic_output_shape} & set(func.tags):
        return True
    if func.overloadpacket in (torch.ops.aten.index, torch.ops.aten.index_put,
                               torch.ops.aten.index_put_):
        indices = args[1] if len(args) > 1 else ()
        return any(t is not None and t.dtype == torch.bool for t in indices)
    return func.overloadpacket in (torch.ops.aten.is_nonzero, torch.ops.aten.item)


@pytest.mark.parametrize("fused", [True, False])
def test_training_step_has_no_host_synchronisation(spottune_net, fused):
    net = spottune_net().train()
    net.fused = fused
    recorder = OpRecorder()
    with recorder:
        logits, _ = net(images(), DOMAIN)
        nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    assert any(func.overloadpacket == torch.ops.aten.convolution_backward
               for func, _ in recorder.calls), "backward ops were not recorded"
    offending = [str(func) for func, args in recorder.calls if host_synchronising(func, args)]
    assert not offending


def test_frozen_weight_gradients_are_never_computed(spottune_net):
    """Every convolution weight gradient computed belongs to a trainable convolution."""
    net = spottune_net().train()
    recorder = OpRecorder()
    with recorder:
        logits, _ = net(images(), DOMAIN)
        logits.sum().backward()
    computed = Counter(tuple(args[2].shape) for func, args in recorder.calls
                       if func.overloadpacket == torch.ops.aten.convolution_backward
                       and args[-1][1])
    trainable = Counter(tuple(p.shape) for p in net.domains[DOMAIN].parameters() if p.dim() == 4)
    assert computed == trainable
    assert all(p.grad is None for p in net.backbone.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_training_step_equals_eager(spottune_net):
    """Forward, backward and SGD step of a fused SpotTune net captured in one CUDA graph:
    replayed, it updates the parameters and BN statistics as the eager step does."""
    device = torch.device("cuda")
    graphed = spottune_net().to(device).train()
    x = images(8).to(device)
    y = torch.arange(8, device=device) % 5

    def sgd(net):
        return torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)

    def step(net, optimizer):
        optimizer.zero_grad(set_to_none=True)
        logits, _ = net(x, DOMAIN)
        nn.functional.cross_entropy(logits, y).backward()
        optimizer.step()

    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        graphed_state, eager_state = run_both(graphed, sgd, step)
    for (name, a), b in zip(graphed_state.items(), eager_state.values()):
        if torch.is_tensor(a):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def run_both(graphed, sgd, step):
    """Warm up, copy, capture; replay the graph and step the copy eagerly, same seeds."""
    optimizer = sgd(graphed)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):   # warm-up: momentum buffers, cuDNN's choices
        for _ in range(2):
            step(graphed, optimizer)
    torch.cuda.current_stream().wait_stream(stream)
    eager = copy.deepcopy(graphed)
    eager_optimizer = sgd(eager)
    eager_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(graphed, optimizer)
    for seed in (3, 4):
        torch.manual_seed(seed)
        graph.replay()
        torch.manual_seed(seed)
        step(eager, eager_optimizer)
    torch.cuda.synchronize()
    return graphed.state_dict(), eager.state_dict()
