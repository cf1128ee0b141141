"""Routed SpotTune inference: each image runs only the branch of each block it takes.

``routing_pays`` is the rule ``SpotTuneNet.forward(routed=None)`` follows to choose
between routed and dense evaluation; ``residual_functions`` how the routed blocks run.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

# Smallest batch for which routed evaluation is chosen by default, per device type (None:
# never). On a CPU routed wins at every batch size (it skips convolutions, and a CPU is
# compute-bound); on CUDA it barely wins with a fixed half-tuned policy and loses badly
# with sampled decisions, whose every block mixes the two branches: the gathers and
# half-size convolutions are launch-bound. So CUDA evaluates dense (the figures:
# results/bench/README.md).
ROUTED_MIN_BATCH = {"cpu": 1, "cuda": None}


def routing_pays(x: torch.Tensor) -> bool:
    """Whether a routed forward of the batch ``x`` is expected to beat the dense one."""
    smallest = ROUTED_MIN_BATCH.get(x.device.type, 1)
    return smallest is not None and x.shape[0] >= smallest


# Device types on which a routed forward without gradient runs each block's residual
# branch by default as two convolutions with their BN layers folded in (conv + bias,
# ReLU, conv + bias), called as functions (``SpotTuneNet(fold_routed=None)``). On a GPU a
# routed forward is bound by the host's launches: module calls and BN calls are about a
# quarter of its host time (measured on a CPU with tiny tensors), while folding all the
# BN layers takes a few foreach launches and one multiply per convolution. On a CPU it
# saves the BN passes (bench_models measures both, results/bench/README.md). Folding changes the arithmetic by about
# 1e-6 of the logits' scale (routed and dense agree to that, not to the last bit);
# ``fold_routed=False`` runs the modules, as the dense forward does.
FOLDED_DEVICES = {"cuda", "cpu"}


def _folded_residual(x: torch.Tensor, w1, b1, stride, w2, b2) -> torch.Tensor:
    return F.conv2d(F.conv2d(x, w1, b1, stride, 1).relu_(), w2, b2, 1, 1)


def _fold(branches: list) -> list:
    """[(block, norms)] -> the blocks' residual branches with each BN folded into the
    convolution before it: weight * s, bias beta - mean * s, s = gamma / sqrt(var + eps);
    a few foreach calls for all of them."""
    convs = [(b.conv_bn1.conv, n[0]) for b, n in branches] + [(b.conv_bn2.conv, n[1]) for b, n in branches]
    norms = [bn for _, bn in convs]
    scales = torch._foreach_add([bn.running_var for bn in norms], [bn.eps for bn in norms])
    torch._foreach_rsqrt_(scales)
    torch._foreach_mul_(scales, [bn.weight for bn in norms])
    biases = torch._foreach_sub([bn.bias for bn in norms],
                                torch._foreach_mul([bn.running_mean for bn in norms], scales))
    weights = torch._foreach_mul([conv.weight for conv, _ in convs], [s.view(-1, 1, 1, 1) for s in scales])
    k = len(branches)
    return [partial(_folded_residual, w1=weights[i], b1=biases[i], stride=b.conv_bn1.conv.stride,
                    w2=weights[k + i], b2=biases[k + i]) for i, (b, _) in enumerate(branches)]


def _gather(h: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``h.index_select(0, index)``, keeping a channels_last tensor channels_last."""
    if h.dim() == 4 and not h.is_contiguous() and h.is_contiguous(memory_format=torch.channels_last):
        return h.permute(0, 2, 3, 1).index_select(0, index).permute(0, 3, 1, 2)
    return h.index_select(0, index)


class RoutingPlan:
    """Which images each block sends through its fine-tuned copy, worked out once.

    The decisions come to the host in ONE synchronisation (a small N x blocks matrix);
    every index is computed there and sent to the device in one copy. Between blocks the
    hidden state stays permuted: before a block whose images split, one gather puts the
    images taking the fine-tuned path first (each part in batch order), the two residual
    branches run on the two contiguous slices, their outputs are concatenated, and the
    shortcut is added and the ReLU applied once for the whole batch. A block whose images
    all take one path runs that branch on the state in whatever order it is, and a
    gather is skipped when the state is already in the order needed. ``restore`` puts the
    (N, classes) logits back in batch order at the end.
    """

    def __init__(self, decisions: torch.Tensor, has_tuned: list[bool]):
        # The one host synchronisation; blocks without a fine-tuned copy run frozen.
        use = decisions.detach().bool().cpu() & torch.tensor(has_tuned, dtype=torch.bool)
        self.batch_size = n = use.shape[0]
        self.counts = use.sum(0).tolist()
        # Per block, a stable sort of "takes the frozen path" lists tuned images first.
        orders = torch.sort((~use).to(torch.uint8), dim=0, stable=True).indices
        identity = torch.arange(n)
        position = identity  # position[i]: where image i sits in the current state
        gathers = {}
        for block, count in enumerate(self.counts):
            if not 0 < count < n:
                continue
            order = orders[:, block]
            relative = position[order]
            if not torch.equal(relative, identity):
                gathers[block] = relative
            position = torch.empty_like(identity).index_copy_(0, order, identity)
        blocks = list(gathers)
        indices = [gathers[b] for b in blocks]
        restore = not torch.equal(position, identity)
        if restore:
            indices.append(position)
        on_device = torch.stack(indices).to(decisions.device).unbind(0) if indices else ()
        self.gathers = dict(zip(blocks, on_device))
        self.restore_index = on_device[-1] if restore else None

    def run(self, index: int, h: torch.Tensor, tuned, frozen, shortcut) -> torch.Tensor:
        """Block ``index`` on the (permuted) state ``h``; returns the next state.
        ``tuned`` and ``frozen`` give each copy's residual branch, ``shortcut`` the
        block's shortcut. (A block pruned of its fine-tuned copy has count 0.)"""
        count = self.counts[index]
        if count in (0, self.batch_size):
            residual = (tuned if count else frozen)(h)
        else:
            gather = self.gathers.get(index)
            if gather is not None:
                h = _gather(h, gather)
            residual = torch.cat([tuned(h[:count]), frozen(h[count:])])
        return residual.add_(shortcut(h)).relu_()

    def restore(self, outputs: torch.Tensor) -> torch.Tensor:
        """Per-image outputs of the permuted state, back in batch order."""
        return outputs if self.restore_index is None else outputs.index_select(0, self.restore_index)


def residual_functions(plan: RoutingPlan, blocks, norms, tuned_blocks, folded: bool) -> list:
    """Per block, (frozen, tuned) functions of x giving each copy's residual branch
    (None for a branch no image takes). ``norms``: the frozen blocks' BN layers."""
    wanted = []   # (block index, 0 frozen / 1 tuned, block, its BN layers)
    for index, (frozen, frozen_norms, tuned) in enumerate(zip(blocks, norms, tuned_blocks)):
        if plan.counts[index] < plan.batch_size:
            wanted.append((index, 0, frozen, frozen_norms))
        if plan.counts[index] > 0:
            wanted.append((index, 1, tuned, tuned.norms()))
    if folded:
        with torch.no_grad():
            functions = _fold([(block, block_norms) for _, _, block, block_norms in wanted])
    else:
        functions = [partial(block, norms=block_norms, add_shortcut=False)
                     for _, _, block, block_norms in wanted]
    result = [[None, None] for _ in blocks]
    for (i, side, _, _), function in zip(wanted, functions):
        result[i][side] = function
    return result
