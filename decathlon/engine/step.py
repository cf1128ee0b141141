"""The training step as the engine runs it: eagerly, or captured whole in a CUDA graph.

At the Decathlon's 64-72 px a ResNet-26 step is bound by kernel launches and host work,
not by the GPU (an H200 ran 15k img/s eagerly at batch 256, 27k when the same step was
one CUDA graph). On CUDA the engine therefore captures `method.update` (forward,
backward, optimizer step) in a `torch.cuda.CUDAGraph` with static input buffers and
replays it every step, as PyTorch's whole-network capture recipe does:

- the first `WARMUP_STEPS` steps run eagerly on a side stream (lazy optimizer state such
  as momentum buffers and cuDNN's algorithm choice settle); they are real steps;
- the graph is captured on the next batch and replayed for it, and for every later one;
- a learning rate is baked into the captured optimizer kernels as a number, so the graph
  is captured again whenever a group's lr changes (a few times per job);
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
from functools import partial

import torch

PRECISIONS = ("fp32", "bf16")
WARMUP_STEPS = 3


def configure_precision(method, precision: str, device: torch.device) -> None:
    """bf16: autocast to bfloat16 on `device`; fp32: plain float32 (TF32 matmuls and
    convolutions allowed on CUDA). Sets `method.autocast`, which update/predict enter.

    Autocast's weight cache stays off: inside a captured CUDA graph the cached bf16 copies
    are freed when the context exits, and every replay would read freed memory (the
    PyTorch CUDA-graph notes ask for cache_enabled=False)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "bf16":
        method.autocast = partial(torch.autocast, device.type, dtype=torch.bfloat16, cache_enabled=False)
    else:
        method.autocast = contextlib.nullcontext
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True


class EagerStep:
    """method.update(x, y), as is."""
    kind = "eager"

    def __init__(self, method):
        self.method = method

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        return self.method.update(x, y)


class GraphedStep:
    """method.update(x, y) replayed from a CUDA graph (see the module docstring).

    The returned tensors are the graph's static outputs: consume them (e.g. add them to
    an accumulator) before the next call overwrites them."""
    kind = "cuda_graph"

    def __init__(self, method, warmup_steps: int = WARMUP_STEPS):
        self.method, self.warmup_steps = method, warmup_steps
        self.steps, self.captures = 0, 0
        self.graph, self.pool, self.captured_lrs = None, None, None
        self.static_x = self.static_y = self.static_out = None
        self.side_stream = torch.cuda.Stream()

    def _lrs(self) -> tuple:
        return tuple(group["lr"] for group in self.method.optimizer.param_groups)

    def _eager_on_side_stream(self, x, y) -> dict:
        self.side_stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side_stream):
            out = self.method.update(x, y)
        torch.cuda.current_stream().wait_stream(self.side_stream)
        return out

    def _capture(self, x, y) -> None:
        if self.static_x is None or self.static_x.shape != x.shape:
            self.static_x, self.static_y = x.clone(), y.clone()
        self.graph = None   # the old graph's memory returns to the pool first
        graph = torch.cuda.CUDAGraph()
        self.pool = self.pool or torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self.pool):
            self.static_out = self.method.update(self.static_x, self.static_y)
        self.graph, self.captured_lrs = graph, self._lrs()
        self.captures += 1

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        self.steps += 1
        if self.steps <= self.warmup_steps:
            return self._eager_on_side_stream(x, y)
        if self.graph is None or self._lrs() != self.captured_lrs or self.static_x.shape != x.shape:
            self._capture(x, y)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()
        return self.static_out


def make_step(method, device: torch.device, graphs: bool):
    """The step runner for `method`: replayed from a CUDA graph, or eager."""
    if graphs and device.type != "cuda":
        raise ValueError("CUDA graphs need a CUDA device (pass --no-cuda-graphs, or run on a GPU)")
    return GraphedStep(method) if graphs else EagerStep(method)


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
