"""Routed SpotTune inference: each image runs only the branch of each block it takes."""
from __future__ import annotations

import torch


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
    images taking the fine-tuned path first (each part in batch order), the two branches
    run on the two contiguous slices and their outputs are concatenated. A block whose
    images all take one path runs that branch on the state in whatever order it is, and
    a gather is skipped when the state is already in the order needed. ``restore`` puts
    the (N, classes) logits back in batch order at the end.
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

    def run(self, index: int, h: torch.Tensor, tuned, frozen) -> torch.Tensor:
        """Block ``index`` on the (permuted) state ``h``; returns the next state."""
        count = self.counts[index]
        if count == 0:
            return frozen(h)
        if count == self.batch_size:
            return tuned(h)
        gather = self.gathers.get(index)
        if gather is not None:
            h = _gather(h, gather)
        return torch.cat([tuned(h[:count]), frozen(h[count:])])

    def restore(self, outputs: torch.Tensor) -> torch.Tensor:
        """Per-image outputs of the permuted state, back in batch order."""
        return outputs if self.restore_index is None else outputs.index_select(0, self.restore_index)
