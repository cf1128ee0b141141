"""NetTailor's student network (Morgado & Vasconcelos, CVPR 2019; docs/reference.md, section 5.3).

The pretrained ResNet-26 is kept whole and frozen: its stem and its 12 residual blocks are
the "universal blocks". Each layer l of the student sums, weighted by a softmax over its
gate logits, 1) the universal block l on the previous output and 2) up to `max_skip`
task-specific "proxy" layers, each reading one of the last `max_skip` outputs (the
previous one, and those 1, 2, ... layers further back, the stem's included): a max-pool
where the resolution drops, a 1x1 convolution without bias and a BN. The sum goes through
a ReLU. A new `head_bn` and classifier end the network. Gate logits start at 2 for the
block and -2 for each proxy, as the public code sets them.

Pruning closes gates for good: a closed branch leaves the softmax and its module is
removed (`prune`), so a pruned network stores and computes only what it kept; with
`prune(..., remove=False)` the modules stay and only the gates close, which gives the
same outputs. The `keep` masks are buffers: a checkpoint's state dict says which
structure it was saved from (`keep_masks_in`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from decathlon.models.resnet import ResNet, pool_features

INPUT_SIZE = 64   # the public code's FLOP counts assume 64x64 images (its student_resnet_wide.py)


class MaxPoolChannelsLast(nn.MaxPool2d):
    """nn.MaxPool2d computed in channels_last on the CPU, its output in the input's layout:
    the same maxima, and about 4x faster than torch 2.14's CPU kernel for contiguous
    tensors at the proxies' shapes (where it took a fifth of a distilling step)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous():
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class Proxy(nn.Sequential):
    """[MaxPool2d(stride + 1, stride, stride // 2) when the resolution drops] -> 1x1 conv -> BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        pool = [MaxPoolChannelsLast(stride + 1, stride, stride // 2)] if stride > 1 else []
        super().__init__(*pool, nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))


class TailoredLayer(nn.Module):
    """One universal block and its proxies, mixed by gates; branch 0 is the block (on
    ends[0]), branch j >= 1 the proxy on ends[j - 1] (ends[0] is the previous output)."""

    def __init__(self, block: nn.Module, proxies: list):
        super().__init__()
        self.block = block
        self.proxies = nn.ModuleDict({str(j): proxy for j, proxy in enumerate(proxies, start=1)})
        count = len(proxies) + 1
        self.gate_logits = nn.Parameter(torch.tensor([2.0] + [-2.0] * len(proxies)))
        self.register_buffer("keep", torch.ones(count, dtype=torch.bool))
        self.kept = list(range(count))   # Python copy of `keep`: the forward's static structure

    def gates(self) -> torch.Tensor:
        """Softmax of the gate logits over the open branches; 0 for the closed ones."""
        if len(self.kept) == len(self.keep):
            return self.gate_logits.softmax(0)
        return self.gate_logits.masked_fill(~self.keep, float("-inf")).softmax(0)

    def forward(self, ends: list) -> torch.Tensor:
        gates, out = self.gates(), 0.0
        for j in self.kept:
            branch = self.block(ends[0]) if j == 0 else self.proxies[str(j)](ends[j - 1])
            out = out + gates[j] * branch
        return F.relu(out)

    def forward_with_local(self, ends: list) -> tuple:
        """(forward(ends), forward of the detached ends), as the public code computes them by
        calling the layer twice, with the frozen block run once. Its output on detached
        inputs is its output detached: nothing in it learns. Its BN layers (in train mode,
        as in the code) still update their running statistics twice, from the same batch
        statistics, so the state matches the two calls exactly."""
        gates, out, local = self.gates(), 0.0, 0.0
        for j in self.kept:
            if j == 0:
                block = _twice_updating_stats(self.block, ends[0])
                out, local = out + gates[0] * block, local + gates[0] * block.detach()
            else:
                proxy = self.proxies[str(j)]
                local = local + gates[j] * proxy(ends[j - 1].detach())
                out = out + gates[j] * proxy(ends[j - 1])
        return F.relu(out), F.relu(local)

    def close(self, keep: list, remove: bool) -> None:
        self.keep.copy_(torch.tensor(keep, dtype=torch.bool))
        self.kept = [j for j, k in enumerate(keep) if k]
        if remove:
            if not keep[0]:
                self.block = None
            for j in [j for j in range(1, len(keep)) if not keep[j] and str(j) in self.proxies]:
                del self.proxies[str(j)]


def _update_stats_again(bn: nn.BatchNorm2d, inputs: tuple, output: torch.Tensor) -> None:
    """A forward hook: the running-statistics update a second identical call of `bn` makes
    (the same kernel on the same input, so bit for bit), without its output."""
    if not (bn.training and bn.track_running_stats):
        return
    with torch.no_grad():
        bn.num_batches_tracked.add_(1)
        momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        torch.batch_norm_update_stats(inputs[0], bn.running_mean, bn.running_var, momentum)


def _twice_updating_stats(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """block(x), with every BN inside it updating its running statistics as if called twice."""
    hooks = [m.register_forward_hook(_update_stats_again) for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    try:
        return block(x)
    finally:
        for hook in hooks:
            hook.remove()


class NetTailorNet(nn.Module):
    """The student: frozen stem and universal blocks of `backbone`, proxies, gates, head."""

    def __init__(self, backbone: ResNet, num_classes: int, max_skip: int):
        super().__init__()
        backbone.requires_grad_(False)
        self.stem = backbone.stem
        channels, size = [backbone.stem.conv.out_channels], [INPUT_SIZE]   # per output, stem first
        layers, flops = [], []
        for block in backbone.blocks:
            c_in, c_out = channels[-1], block.conv_bn1.conv.out_channels
            out_size = size[-1] // block.conv_bn1.conv.stride[0]
            sources = list(range(len(channels) - 1, max(len(channels) - 1 - max_skip, -1), -1))
            layers.append(TailoredLayer(block, [Proxy(channels[s], c_out, size[s] // out_size) for s in sources]))
            # The public code's FLOP counts (BasicWideResBlock.FLOPS, BasicProxy.FLOPS).
            spatial = out_size ** 2
            flops.append([spatial * (c_in * c_out * 9 + c_out * 2 + c_out * c_out * 9 + c_out * 2)]
                         + [spatial * (channels[s] * c_out + c_out * 2) for s in sources])
            channels.append(c_out)
            size.append(out_size)
        self.layers = nn.ModuleList(layers)
        self.head_bn = nn.BatchNorm2d(channels[-1])
        self.classifier = nn.Linear(channels[-1], num_classes)
        self.max_skip = max_skip
        # Relative to the stem and universal blocks together (the code's `global_flops`); its
        # stem count takes a 7x7 kernel (a ResNet-34 formula left in its wide ResNet-26 file).
        stem = INPUT_SIZE ** 2 * (3 * channels[0] * 7 ** 2 + channels[0] * 2)
        total = stem + sum(layer[0] for layer in flops)
        self.relative_flops = [[f / total for f in layer] for layer in flops]

    def forward(self, x: torch.Tensor, local: bool = False):
        """Logits; with `local`, also each layer's output computed from detached inputs
        (what the public code distils each layer on: its own parameters only learn from it)."""
        ends, locals_ = [self.stem(x)], []
        for layer in self.layers:
            recent = ends[::-1][:self.max_skip]
            if local:
                out, local_out = layer.forward_with_local(recent)
                locals_.append(local_out)
            else:
                out = layer(recent)
            ends.append(out)
        logits = self.classifier(pool_features(ends[-1], self.head_bn))
        return (logits, locals_) if local else logits

    def expected_complexity(self) -> torch.Tensor:
        """The public code's `expected_complexity` (student_resnet_wide.py): for each branch,
        its FLOPs (relative to the stem and universal blocks) times (gate - p_in - p_out),
        where p_in is the probability that the previous layer's branches are all closed and
        p_out that every branch reading this layer's output is closed (1 at either end)."""
        gates = [layer.gates() for layer in self.layers]
        incoming = [torch.prod(1 - g) for g in gates]
        outgoing = [[] for _ in gates]
        for i, g in enumerate(gates):
            for j in range(len(g)):
                outgoing[i if j <= 1 else i - (j - 1)].append(g[j])
        outgoing = [torch.prod(1 - torch.stack(o)) for o in outgoing]
        total = 0.0
        for i, (g, costs) in enumerate(zip(gates, self.relative_flops)):
            p_in = 1.0 if i == 0 else incoming[i - 1]
            p_out = 1.0 if i == len(gates) - 1 else outgoing[i + 1]
            for j, cost in enumerate(costs):
                total = total + cost * (g[j] - p_in - p_out)
        return total

    def prune(self, keep_masks: list, remove: bool = True) -> None:
        """Close the branches whose mask entry is False; `remove`: drop their modules too."""
        for layer, keep in zip(self.layers, keep_masks, strict=True):
            layer.close([bool(k) for k in keep], remove)

    def keep_masks(self) -> list:
        return [[bool(k) for k in layer.keep.tolist()] for layer in self.layers]

    def domain_parameter_count(self) -> int:
        """What the domain stores: the kept proxies, the gates of kept branches, head_bn and
        the classifier (the universal blocks are the shared backbone's)."""
        count = sum(p.numel() for p in (*self.head_bn.parameters(), *self.classifier.parameters()))
        for layer in self.layers:
            count += len(layer.kept)
            count += sum(p.numel() for j in layer.kept if j > 0 for p in layer.proxies[str(j)].parameters())
        return count


def keep_masks_in(state: dict, prefix: str) -> list | None:
    """The keep masks a student's state dict was saved with (None if it has none)."""
    keys = sorted((k for k in state if k.startswith(prefix) and k.endswith(".keep")),
                  key=lambda k: int(k[len(prefix):].split(".")[0]))
    return [[bool(v) for v in state[k].tolist()] for k in keys] or None


def prune_rule(net: NetTailorNet, universal: int, threshold: float) -> list:
    """The public code's `threshold_alphas(num_global=..., thr_proxies=...)`: close the
    `universal` blocks of lowest gate and every proxy whose gate is at most `threshold`.
    One guard of ours: a layer that would lose every branch keeps its strongest one (the
    public network would then pass nothing on)."""
    gates = [layer.gates().detach().cpu() for layer in net.layers]
    masks = [[True] * len(g) for g in gates]
    for i in torch.argsort(torch.stack([g[0] for g in gates]), stable=True)[:universal].tolist():
        masks[i][0] = False
    for mask, g in zip(masks, gates):
        for j in range(1, len(g)):
            if g[j] <= threshold:
                mask[j] = False
        if not any(mask):
            mask[int(torch.argmax(g))] = True
    return masks


def teacher_forward(teacher: ResNet, x: torch.Tensor) -> tuple:
    """(logits, each residual block's output) of a fine-tuned ResNet-26 (the teacher)."""
    ends, h = [], teacher.stem(x)
    for block in teacher.blocks:
        h = block(h)
        ends.append(h)
    return teacher.classifier(pool_features(h, teacher.head_bn)), ends
