"""The torch.compile'd SpotTune tail against the eager one (``_MixedTail``), and the option
that selects it. One small shape per test: compiling on a CPU takes seconds per shape."""
import copy

import pytest
import torch

from decathlon.benchmark import hparams
from decathlon.models import SpotTuneNet, resnet26
from decathlon.models.compiled_tail import CompiledMixedTail
from decathlon.models.fused import _MixedTail

DOMAIN = "aircraft"


def tail_inputs(device="cpu", shape=(6, 4, 5, 5)):
    """frozen, tuned, shortcut (requiring gradients) and decisions in {0, 1} of both kinds."""
    generator = torch.Generator().manual_seed(0)
    tensors = [torch.randn(shape, generator=generator) for _ in range(3)]
    a = torch.tensor([0.0, 1.0] * (shape[0] // 2))
    return [t.to(device).requires_grad_(True) for t in (*tensors, a)]


def tail_and_gradients(tail, inputs):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = tail.apply(*inputs)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out.device))
    return out, [t.grad for t in inputs]


def assert_same_tail(inputs):
    out, grads = tail_and_gradients(CompiledMixedTail, inputs)
    expected, expected_grads = tail_and_gradients(_MixedTail, inputs)
    assert torch.equal(out, expected)
    for name, grad, reference in zip(("frozen", "tuned", "shortcut"), grads, expected_grads):
        assert torch.equal(grad, reference), name
    # a's gradient is a sum per image: equal up to the order of the summation.
    torch.testing.assert_close(grads[3], expected_grads[3], rtol=1e-6, atol=1e-6)
    assert grads[3].abs().sum() > 0


def test_compiled_tail_equals_eager_tail_forward_and_gradients():
    assert_same_tail(tail_inputs())


def test_compiled_tail_training_step_equals_eager_tail(spottune_net):
    """A whole Gumbel training step with tail='compiled': same logits and decisions, same
    gradients (the policy's up to summation order) and BN statistics as tail='eager'."""
    eager = spottune_net().train()
    compiled = copy.deepcopy(eager)
    compiled.tail = "compiled"
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    results = []
    for net in (eager, compiled):
        torch.manual_seed(1)
        logits, decisions = net(x, DOMAIN)
        (logits * torch.linspace(-1, 1, logits.numel()).view_as(logits)).sum().backward()
        results.append((logits, decisions))
    assert torch.equal(results[0][1], results[1][1])
    assert torch.equal(results[0][0], results[1][0])
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=name)
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        if torch.is_tensor(a):   # running statistics of both halves
            assert torch.equal(a, b), name


def test_compiled_tail_option_is_checked_and_threaded():
    with pytest.raises(ValueError, match="tail must be one of"):
        SpotTuneNet(resnet26(5, 0.25), tail="fast")
    assert hparams("spottune", DOMAIN)["tail"] == "eager"
    assert hparams("spottune_joint", DOMAIN, overrides={"tail": "compiled"})["tail"] == "compiled"
    with pytest.raises(ValueError, match="hyperparameter 'tail' is 'fast'; expected one of eager, compiled"):
        hparams("spottune", DOMAIN, overrides={"tail": "fast"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_tail_equals_eager_tail_on_cuda():
    """Triton's kernels: equal outputs and half gradients, a's up to summation order."""
    assert_same_tail(tail_inputs("cuda"))
