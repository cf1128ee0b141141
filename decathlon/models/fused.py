"""SpotTune's two branches of one residual block, computed together (training, dense forward).

Both copies of block l read the same input h: the frozen block (shared backbone
convolutions with the domain's own BN layers) and the fine-tuned copy. Today's
arithmetic, kept as ``SpotTuneNet(fused=False)``, runs them as two blocks and mixes
``a * tuned(h) + (1 - a) * frozen(h)``. Here:

* the first convolutions of both copies run as ONE convolution of h with the two weights
  concatenated (2C outputs), whose backward takes ONE input-gradient call and computes
  the weight gradient of the fine-tuned half only (``_SharedInputConvs``): the frozen
  weights get no gradient, and theirs is not computed either;
* each half then runs its own BN, ReLU, second convolution and BN, on a contiguous
  tensor (the frozen weights' gradient is again not computed: they need none);
* the shortcut is computed once, and its addition, the ReLUs and the mix run as one
  autograd function (``_MixedTail``) whose backward makes 14 passes over a C-channel
  tensor where autograd's makes about 22.

The alternative of the whole block as one 2C-channel tensor (one BN over 2C channels, the
second convolutions as one grouped convolution) measured slower on a GPU and a CPU
(results/bench/README.md).

Everything is graph-safe (no host synchronisation, no data-dependent shape), so a
training step can be captured in a CUDA graph. Under autocast the convolutions run in
the autocast dtype, as ``F.conv2d`` would.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from decathlon.models.resnet import BasicBlock


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype ``F.conv2d`` computes in: the autocast dtype where autocast is on."""
    device = x.device.type
    if torch.is_autocast_enabled(device) and x.is_floating_point():
        return torch.get_autocast_dtype(device)
    return x.dtype


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class _SharedInputConvs(torch.autograd.Function):
    """``conv2d(x, frozen)`` and ``conv2d(x, tuned)`` (3x3, padding 1) as one convolution
    with 2C outputs, returned as two contiguous halves. Backward: one input-gradient call
    over both halves, and the weight gradient of ``tuned`` only."""

    @staticmethod
    def forward(ctx, x, frozen, tuned, stride: int):
        ctx.dtypes, ctx.stride = (x.dtype, tuned.dtype), stride
        dtype = _compute_dtype(x)
        x = x.to(dtype)
        weight = torch.cat([frozen, tuned]).to(dtype)
        ctx.save_for_backward(x, weight)
        z = F.conv2d(x, weight, None, stride, 1)
        layout = _memory_format(z)
        return tuple(half.contiguous(memory_format=layout) for half in z.chunk(2, 1))

    @staticmethod
    def backward(ctx, grad_frozen, grad_tuned):
        x, weight = ctx.saved_tensors
        geometry = ([ctx.stride] * 2, [1, 1], [1, 1], False, [0, 0], 1)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad = torch.cat([grad_frozen, grad_tuned], 1)
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, *geometry, [True, False, False])[0].to(ctx.dtypes[0])
        if ctx.needs_input_grad[2]:
            tuned = weight[weight.shape[0] // 2:]
            grad_weight = torch.ops.aten.convolution_backward(
                grad_tuned, x, tuned, None, *geometry, [False, True, False])[1].to(ctx.dtypes[1])
        return grad_x, None, grad_weight, None


class _MixedTail(torch.autograd.Function):
    """``lerp(relu(frozen + shortcut), relu(tuned + shortcut), a)`` for hard decisions
    ``a`` in {0, 1} (1 = fine-tuned), with the straight-through gradient to ``a``.

    As each image's gradient goes to one half only, the backward computes the gradient
    of the shortcut once, ``relu'(output) * grad``, and each half's as that times its
    weight (``1 - a`` or ``a``)."""

    @staticmethod
    def forward(ctx, frozen, tuned, shortcut, a):
        ctx.a_dtype = a.dtype
        a = a.to(frozen.dtype).view(-1, 1, 1, 1)
        relu_frozen = torch.add(frozen, shortcut).relu_()
        relu_tuned = torch.add(tuned, shortcut).relu_()
        out = torch.lerp(relu_frozen, relu_tuned, a)
        ctx.save_for_backward(out, relu_frozen, relu_tuned, a)
        return out

    @staticmethod
    def backward(ctx, grad):
        out, relu_frozen, relu_tuned, a = ctx.saved_tensors
        grad_shortcut = torch.ops.aten.threshold_backward(grad, out, 0)
        grad_a = None
        if ctx.needs_input_grad[3]:
            grad_a = (grad * (relu_tuned - relu_frozen)).sum((1, 2, 3)).to(ctx.a_dtype)
        return grad_shortcut * (1 - a), grad_shortcut * a, grad_shortcut, grad_a


def two_branch_block(h: torch.Tensor, frozen: BasicBlock, frozen_norms, tuned: BasicBlock,
                     a: torch.Tensor) -> torch.Tensor:
    """``a * tuned(h) + (1 - a) * frozen(h, norms=frozen_norms)``, computed as above.

    ``a``: (N,) decisions in {0, 1}, 1 = fine-tuned path, with their straight-through
    gradient if any. BN layers update their running statistics as in the two blocks."""
    z_frozen, z_tuned = _SharedInputConvs.apply(
        h, frozen.conv_bn1.conv.weight, tuned.conv_bn1.conv.weight, frozen.conv_bn1.conv.stride[0])
    halves = []
    for z, block, norms in ((z_frozen, frozen, frozen_norms), (z_tuned, tuned, tuned.norms())):
        z = norms[0](z).relu_()
        halves.append(norms[1](F.conv2d(z, block.conv_bn2.conv.weight, None, 1, 1)))
    return _MixedTail.apply(*halves, frozen.shortcut(h), a)
