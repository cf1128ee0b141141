"""SpotTune's cost against its baselines, measured in one run on one device.

Two ratios, each against a baseline timed in the same process, interleaved with it:

- training: one step (forward, backward, SGD step; no host synchronisation inside) of the
  ``spottune`` method (policy network, both branches of every block as one fused block,
  straight-through Gumbel decisions) over one of the ``finetune`` method, same batch, width
  and pretrained backbone. ``spottune_unfused`` (``SpotTuneNet(fused=False)``: the two
  branches as two blocks) is timed beside them for comparison. Target: spottune /
  finetune <= 2.0x. ``spottune_compiled_tail`` (``tail="compiled"``: the fused block's tail
  compiled by torch.compile) is timed beside them, with its compile time and the steps it
  needs to pay that back (``_compiled_tail.py``). ``piggyback`` (masked convolutions,
  Adam), ``taps`` (every convolution computed with its frozen weight plus its gated delta,
  sparsity penalty included) and ``nettailor`` (its distilling phase) are timed beside
  them too, with no target.
- inference: ``SpotTuneNet.forward(routed=True)`` (each block runs only the branch each
  image takes) over ``routed=False`` (both branches, fused, mixed), policy network
  included, in eval mode under ``torch.no_grad``, with the decisions of a policy whose
  logits favour each path with probability 0.5 per (image, block). The two outputs are
  checked to agree (in float32) before timing. Also printed: which path
  ``routed=None`` picks here (``decathlon.models.routing.routing_pays``).
  Target: routed / dense <= 0.6x.

Times are per call, after warm-up; the sides alternate call by call (ABBA order) so a
change in machine load hits all of them. Reported: each side's median, the ratio of the
medians (the verdict) and, as a check, the median of the per-round ratios. On CPU the
default is ONE torch thread: on a small shared machine two OpenMP threads wait on each
other whenever another process takes a core, and single calls then vary tenfold. On CUDA,
``--graphs`` captures each training step in a CUDA graph (as the engine will) and
replays it; ``--bf16`` runs under bf16 autocast, ``--channels-last`` converts models and
inputs.

    python bench/bench_models.py                      # CPU, width 0.25, batch 64 of 3x64x64
    python bench/bench_models.py --device cuda --width 1 --batch 256 --bf16 --channels-last --graphs
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from functools import partial
from pathlib import Path

import torch

import _compiled_tail
from _common import FixedDecisions, backbone_state, machine_info, synchronize
from _models_markdown import markdown
from decathlon.benchmark import hparams
from decathlon.engine.step import EagerStep, GraphedStep
from decathlon.engine import autocast_for
from decathlon.methods import METHODS
from decathlon.models import SpotTuneNet, resnet26
from decathlon.models.routing import FOLDED_DEVICES, routing_pays

TRAIN_TARGET = 2.0      # spottune / finetune step time, at most
ROUTED_TARGET = 0.6     # routed / dense inference time, at most
DOMAIN = "cifar100"     # any domain: hparams are the cpu_demo preset's, width overridden
NUM_CLASSES = 100


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved(sides: dict, device: torch.device, warmup: int, rounds: int, per_round: int = 1) -> dict:
    """{name: fn} -> {name: [seconds per call]}: `warmup` untimed calls each, then `rounds`
    rounds of `per_round` timed calls per side, the order of the sides alternating."""
    for fn in sides.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    times = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name] += [timed(sides[name], device) for _ in range(per_round)]
    return times


def summary(times: list) -> dict:
    return {"median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times),
            "max_ms": 1e3 * max(times), "n": len(times)}


def compare(times: dict, baseline: str, method: str, per_round: int, target: float) -> dict:
    """Summaries of every side, the ratio of the medians of `method` over `baseline` and its
    verdict, and each other side's ratio over the baseline."""
    def ratio_of(name):
        return statistics.median(times[name]) / statistics.median(times[baseline])
    rounds = [statistics.median(times[method][k:k + per_round]) / statistics.median(times[baseline][k:k + per_round])
              for k in range(0, len(times[method]), per_round)]
    ratio = ratio_of(method)
    return {**{name: summary(t) for name, t in times.items()}, "ratio": ratio,
            "ratio_per_round_median": statistics.median(rounds), "target": target,
            "verdict": verdict(ratio, target),
            "other_ratios": {name: ratio_of(name) for name in times if name not in (baseline, method)}}


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def precision(args, device: torch.device):
    """The autocast context the timed calls run in (bf16 with --bf16), as the engine sets it."""
    return autocast_for("bf16" if args.bf16 else "fp32", device)


def prepared(module, args, device: torch.device):
    module = module.to(device)
    return module.to(memory_format=torch.channels_last) if args.channels_last else module


def batch(args, device: torch.device, seed: int) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=generator).to(device)
    y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=generator).to(device)
    return (x.contiguous(memory_format=torch.channels_last) if args.channels_last else x), y


def training_method(side: str, args, device: torch.device, state: dict):
    """The method a side of the training comparison times, on the device, in its precision."""
    name = side.removesuffix("_unfused").removesuffix("_compiled_tail")
    torch.manual_seed(0)
    tail = {"tail": "compiled"} if side.endswith("_compiled_tail") else {}
    params = hparams(name, DOMAIN, "cpu_demo", {"width": args.width, **tail})
    # nettailor's distilling phase (its costlier one): its teacher is a fine-tuned ResNet-26.
    teacher = ({"teacher_state": resnet26(NUM_CLASSES, width=args.width).state_dict()}
               if name == "nettailor" else {})
    method = prepared(METHODS[name](NUM_CLASSES, params, state, **teacher), args, device)
    method.autocast = precision(args, device)
    if name == "taps":   # its last epoch: the sparsity penalty on (nettailor's would prune)
        method.begin_epoch(params["epochs"] - 1)
    if side.endswith("_unfused"):
        method.net.spottune.fused = False
    return method


def bench_training(args, device: torch.device) -> dict:
    state = backbone_state(args.width)
    x, y = batch(args, device, seed=1)
    sides = {}
    for side in ("finetune", "spottune", "spottune_unfused", "spottune_compiled_tail", "piggyback", "taps",
                 "nettailor"):
        if side.endswith("_compiled_tail"):   # what compiling costs, on fresh methods, before any timing
            compile_s = _compiled_tail.compile_seconds(
                lambda: partial(EagerStep(training_method(side, args, device, state)), x, y), device, synchronize)
        method = training_method(side, args, device, state)
        # The engine's own step runners: eager, or replayed from a CUDA graph.
        sides[side] = partial(GraphedStep(method) if args.graphs else EagerStep(method), x, y)
    times = interleaved(sides, device, args.warmup, args.rounds, args.steps)
    training = compare(times, "finetune", "spottune", args.steps, TRAIN_TARGET)
    return _compiled_tail.with_break_even(training, compile_s, DOMAIN)


def half_tuned_net(args, device: torch.device) -> tuple:
    """An eval-mode SpotTuneNet with one domain whose fine-tuned blocks differ from the
    frozen ones; its policy network runs, then a fixed Bernoulli(0.5) decision matrix
    stands in for the policy's decisions."""
    torch.manual_seed(0)
    net = SpotTuneNet(resnet26(NUM_CLASSES, args.width))
    net.add_domain(DOMAIN, NUM_CLASSES)
    with torch.no_grad():
        for parameter in net.domains[DOMAIN].tuned_blocks.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    net = prepared(net, args, device).eval()
    generator = torch.Generator().manual_seed(2)
    decisions = torch.bernoulli(torch.full((args.batch, net.num_blocks), 0.5), generator=generator)
    net.decisions = FixedDecisions(decisions.to(device), policy=net.decisions)  # this net only
    x, _ = batch(args, device, seed=3)
    return net, x, decisions


@torch.no_grad()
def bench_inference(args, device: torch.device) -> dict:
    """Dense against routed (the default implementation for this device), with the other
    routed implementation (BN layers folded or not) timed beside them."""
    net, x, decisions = half_tuned_net(args, device)
    folded = device.type in FOLDED_DEVICES
    other = "routed_modules" if folded else "routed_folded"
    autocast = precision(args, device)

    def forward(routed, fold=None):
        def run():
            net.fold_routed = fold
            with autocast():
                return net(x, DOMAIN, "argmax", routed=routed)
        return run

    dense_logits, _ = net(x, DOMAIN, "argmax", routed=False)   # agreement, in float32
    scale, max_diff = float(dense_logits.abs().max()), 0.0
    for fold in (False, True):
        net.fold_routed = fold
        routed_logits, _ = net(x, DOMAIN, "argmax", routed=True)
        max_diff = max(max_diff, float((routed_logits - dense_logits).abs().max()))
    tolerance = (1e-5 if device.type == "cpu" else 1e-2) * max(scale, 1.0)   # CUDA convolutions may use TF32
    if max_diff > tolerance:
        raise SystemExit(f"routed and dense outputs differ (max |diff| {max_diff:.2e}, logits up to {scale:.2e})")
    sides = {"dense": forward(False), "routed": forward(True), other: forward(True, not folded)}
    times = interleaved(sides, device, args.warmup, args.rounds, args.steps)
    return {**compare(times, "dense", "routed", args.steps, ROUTED_TARGET),
            "routed_implementation": "folded" if folded else "modules", "fraction_tuned": float(decisions.mean()),
            "max_abs_diff": max_diff, "auto_picks": "routed" if routing_pays(x) else "dense"}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=64, help="image side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per side")
    parser.add_argument("--rounds", type=int, default=12, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=1, help="timed calls per side and round")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: 1 on CPU, see above; torch's elsewhere)")
    parser.add_argument("--bf16", action="store_true", help="time under bf16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="channels_last models and inputs")
    parser.add_argument("--graphs", action="store_true", help="CUDA: replay each training step as a CUDA graph")
    parser.add_argument("--only", choices=("training", "inference"), default=None)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default results/bench/models_<device type>.json; a .md goes beside it)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.graphs and device.type != "cuda":
        parser.error("--graphs needs --device cuda")
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    report = {"machine": machine_info(device),
              "config": {k: getattr(args, k) for k in ("width", "batch", "size", "warmup", "rounds", "steps",
                                                       "bf16", "channels_last", "graphs")}}
    if args.only in (None, "training"):
        report["training"] = t = bench_training(args, device)
        print(f"training step  finetune {t['finetune']['median_ms']:8.1f} ms  spottune "
              f"{t['spottune']['median_ms']:8.1f} ms  ratio {t['ratio']:.2f}x [per round {t['ratio_per_round_median']:.2f}x] "
              f"(target <= {TRAIN_TARGET}x) {t['verdict']}  [unfused {t['spottune_unfused']['median_ms']:.1f} ms, "
              f"{t['other_ratios']['spottune_unfused']:.2f}x; "
              + "; ".join(f"{m} {t[m]['median_ms']:.1f} ms, {t['other_ratios'][m]:.2f}x"
                          for m in ("piggyback", "taps", "nettailor")) + "]")
        print(_compiled_tail.summary_line(t))
    if args.only in (None, "inference"):
        report["inference"] = i = bench_inference(args, device)
        other = next(name for name in i["other_ratios"])
        print(f"inference      dense    {i['dense']['median_ms']:8.1f} ms  routed   "
              f"{i['routed']['median_ms']:8.1f} ms  ratio {i['ratio']:.2f}x [per round {i['ratio_per_round_median']:.2f}x] "
              f"(target <= {ROUTED_TARGET}x) {i['verdict']}  [{i['routed_implementation']}; {other} "
              f"{i[other]['median_ms']:.1f} ms, {i['other_ratios'][other]:.2f}x; {100 * i['fraction_tuned']:.0f}% tuned, "
              f"max |diff| {i['max_abs_diff']:.1e}; routed=None picks {i['auto_picks']} here]")
    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_1m_after"] = os.getloadavg()[0]
    out = args.out or Path("results/bench") / f"models_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return report


if __name__ == "__main__":
    main()
