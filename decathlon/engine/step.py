"""The training step as the engine runs it: eagerly, or captured whole in a CUDA graph.

At the Decathlon's 64-72 px a ResNet-26 step is bound by kernel launches and host work,
not by the GPU (a CUDA graph of the same step runs it much faster: results/bench/README.md).
On CUDA the engine therefore captures `method.update` (forward,
backward, optimizer step) in a `torch.cuda.CUDAGraph` with static input buffers and
replays it every step, as PyTorch's whole-network capture recipe does:

- the first `WARMUP_STEPS` steps run eagerly on a side stream (lazy optimizer state such
  as momentum buffers and cuDNN's algorithm choice settle); they are real steps;
- the graph is captured on the next batch and replayed for it, and for every later one;
- a learning rate is baked into the captured optimizer kernels as a number, so the graph
  is captured again whenever a group's lr changes (a few times per job);
- a joint multi-domain step has one graph per domain (its batches differ in which
  domain's parts they train);
- a batch shorter than the loader's batch size (an epoch's last one, where `drop_last`
  is off) runs eagerly: a graph holds one shape, and capturing a second for one step per
  epoch would cost a second graph's memory and a capture at every lr change;
- a capture that fails (an operation CUDA graphs cannot hold) is reported and the job
  trains on eagerly; the record's `step` says which ran;
- randomness inside the step (Gumbel noise, dropout) comes from PyTorch's CUDA generator,
  which is graph-safe: every replay draws new numbers; BN running statistics are updated
  in place by captured kernels.

The step never waits for the device: it returns the losses as device tensors, which the
engine accumulates where they are and reads once per epoch. On CPU, under DDP or with
torch.compile the same method runs eagerly (`EagerStep`), so CPU results, and exact
resume on CPU, are unchanged.
"""
from __future__ import annotations

import contextlib
import warnings
from functools import cached_property, partial

import torch

PRECISIONS = ("fp32", "bf16")
WARMUP_STEPS = 3
MAX_GRAPHS = 16   # batch signatures captured at most (a joint job: one per domain)


def autocast_for(precision: str, device: torch.device):
    """The context factory a step and an evaluation run in: bf16 autocast on `device`, or
    plain float32 (TF32 matmuls and convolutions allowed on CUDA).

    Autocast's weight cache stays off: inside a captured CUDA graph the cached bf16 copies
    are freed when the context exits, and every replay would read freed memory (the
    PyTorch CUDA-graph notes ask for cache_enabled=False)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "bf16":
        return partial(torch.autocast, device.type, dtype=torch.bfloat16, cache_enabled=False)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return contextlib.nullcontext


def configure_precision(method, precision: str, device: torch.device) -> None:
    """Set `method.autocast` (which update and predict enter) for `precision`."""
    method.autocast = autocast_for(precision, device)


class EagerStep:
    """method.update(*batch), as is."""
    kind = "eager"

    def __init__(self, method):
        self.method = method

    def __call__(self, *batch) -> dict:
        return self.method.update(*batch)


class _Graph:
    """One captured step: its graph, static inputs and outputs, the lrs baked into it."""

    def __init__(self):
        self.steps, self.graph, self.inputs, self.out, self.lrs = 0, None, None, None, None


class GraphedStep:
    """method.update(*batch) replayed from CUDA graphs (see the module docstring).

    One graph per batch signature (the tensors' shapes and any names in the batch: a
    joint step's domains), captured after that signature's own warm-up steps; beyond
    `max_graphs` signatures a step runs eagerly, and so does a batch of fewer than
    `batch_size` images (None: any size is captured). The returned tensors are a graph's
    static outputs: consume them (e.g. add them to an accumulator) before its next replay."""
    def __init__(self, method, warmup_steps: int = WARMUP_STEPS, max_graphs: int = MAX_GRAPHS,
                 batch_size: int | None = None):
        self.method, self.warmup_steps, self.max_graphs = method, warmup_steps, max_graphs
        self.batch_size = batch_size
        self.graphs, self.captures, self.failed = {}, 0, None

    @cached_property
    def side_stream(self) -> torch.cuda.Stream:
        """Where warm-up steps run; made on first use, so that which steps would be
        captured can be decided (and tested) without a GPU."""
        return torch.cuda.Stream()

    def _lrs(self) -> tuple:
        return tuple(group["lr"] for group in self.method.optimizer.param_groups)

    def _eager_on_side_stream(self, batch) -> dict:
        self.side_stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side_stream):
            out = self.method.update(*batch)
        torch.cuda.current_stream().wait_stream(self.side_stream)
        return out

    def _capture(self, entry: _Graph, batch: tuple) -> bool:
        """Capture the step; False (and eager steps from now on) if capturing fails.

        thread_local: the loader's read-ahead thread may allocate pinned memory meanwhile."""
        if entry.inputs is None:
            entry.inputs = tuple(item.clone() if torch.is_tensor(item) else item for item in batch)
        entry.graph = None   # an old graph's memory is released first
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                entry.out = self.method.update(*entry.inputs)
        except RuntimeError as err:   # an op that cannot be captured: say so, train on eagerly
            self.failed = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
            warnings.warn(f"CUDA graph capture failed, the step runs eagerly from now on ({self.failed})")
            return False
        entry.graph, entry.lrs = graph, self._lrs()
        self.captures += 1
        return True

    @property
    def kind(self) -> str:
        return f"eager (graph capture failed: {self.failed})" if self.failed else "cuda_graph"

    def is_partial(self, batch: tuple) -> bool:
        """Whether a batch holds fewer images than the loader's full batch (a joint step:
        any of its domains' batches)."""
        return self.batch_size is not None and any(
            torch.is_tensor(item) and item.dim() > 0 and len(item) < self.batch_size for item in batch)

    def graph_for(self, batch: tuple) -> _Graph | None:
        """The graph entry a batch is replayed from (made on first sight of its signature),
        or None where it runs eagerly: after a failed capture, for a partial batch, or
        beyond `max_graphs` signatures."""
        key = tuple(tuple(item.shape) if torch.is_tensor(item) else item for item in batch)
        if self.failed or self.is_partial(batch) or (key not in self.graphs and len(self.graphs) >= self.max_graphs):
            return None
        return self.graphs.setdefault(key, _Graph())

    def __call__(self, *batch) -> dict:
        entry = self.graph_for(batch)
        if entry is None:
            return self.method.update(*batch)
        entry.steps += 1
        if entry.steps <= self.warmup_steps:
            return self._eager_on_side_stream(batch)
        if (entry.graph is None or entry.lrs != self._lrs()) and not self._capture(entry, batch):
            return self.method.update(*batch)
        for static, item in zip(entry.inputs, batch):
            if torch.is_tensor(item):
                static.copy_(item)
        entry.graph.replay()
        return entry.out


def make_step(method, device: torch.device, graphs: bool, batch_size: int | None = None):
    """The step runner for `method`: replayed from a CUDA graph, or eager. `batch_size`: the
    training loader's; a shorter batch runs eagerly (see GraphedStep)."""
    if graphs and device.type != "cuda":
        raise ValueError("CUDA graphs need a CUDA device (pass --no-cuda-graphs, or run on a GPU)")
    return GraphedStep(method, batch_size=batch_size) if graphs else EagerStep(method)


class LossMeter:
    """Sums of the step losses, kept on the device; read once per epoch (or for a bar)."""

    def __init__(self):
        self.sums, self.steps = {}, 0

    def add(self, out: dict) -> None:
        for key, value in out.items():
            if key in self.sums:
                self.sums[key] += value
            else:
                self.sums[key] = value.detach().clone().float()
        self.steps += 1

    def means(self) -> dict:
        """{key: mean over the steps so far} as floats (waits for the device)."""
        return {key: float(total) / self.steps for key, total in self.sums.items()} if self.steps else {}
