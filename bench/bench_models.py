"""SpotTune's cost against its baselines, measured in one run on one device.

Two ratios, each against a baseline timed in the same process, interleaved with it:

- training: one ``update()`` of the ``spottune`` method (policy network, both branches of
  every block, straight-through Gumbel decisions) over one of the ``finetune`` method, same
  batch, width and pretrained backbone. Target: spottune / finetune <= 2.3x.
- inference: ``SpotTuneNet.forward(routed=True)`` (each block runs only the branch each
  image takes) over ``routed=False`` (both branches, mixed), under ``torch.no_grad`` in
  eval mode, with a fixed decision matrix where each (image, block) decision is 1 with
  probability 0.5. The two outputs are checked to agree before timing.
  Target: routed / dense <= 0.7x.

Times are per call, after warm-up; the two sides alternate call by call (ABBA order) so a
change in machine load hits both. Reported: each side's median, the ratio of the medians
(the verdict) and, as a check, the median of the per-round ratios. On CPU the default is
ONE torch thread: on a small shared machine two OpenMP threads wait on each other
whenever another process takes a core, and single calls then vary tenfold.

    python bench/bench_models.py                      # CPU, width 0.25, batch 64 of 3x64x64
    python bench/bench_models.py --device cuda --width 1 --batch 128
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from decathlon.benchmark.hparams import hparams
from decathlon.methods import METHODS
from bench_common import FixedDecisions, backbone_state, machine_info, synchronize
from decathlon.models import SpotTuneNet, resnet26

TRAIN_TARGET = 2.3      # spottune / finetune step time, at most
ROUTED_TARGET = 0.7     # routed / dense inference time, at most
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
    """Summaries of both sides, the ratio of their medians and its verdict."""
    rounds = [statistics.median(times[method][k:k + per_round]) / statistics.median(times[baseline][k:k + per_round])
              for k in range(0, len(times[method]), per_round)]
    ratio = statistics.median(times[method]) / statistics.median(times[baseline])
    return {baseline: summary(times[baseline]), method: summary(times[method]), "ratio": ratio,
            "ratio_per_round_median": statistics.median(rounds), "target": target,
            "verdict": verdict(ratio, target)}


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def bench_training(args, device: torch.device) -> dict:
    state = backbone_state(args.width)
    methods = {}
    for name in ("finetune", "spottune"):
        torch.manual_seed(0)
        params = hparams(name, DOMAIN, "cpu_demo", {"width": args.width})
        methods[name] = METHODS[name](NUM_CLASSES, params, state).to(device)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=generator).to(device)
    y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=generator).to(device)
    times = interleaved({name: (lambda m=m: m.update(x, y)) for name, m in methods.items()},
                        device, args.warmup, args.rounds, args.steps)
    return compare(times, "finetune", "spottune", args.steps, TRAIN_TARGET)


def half_tuned_net(args, device: torch.device) -> tuple:
    """An eval-mode SpotTuneNet with one domain whose fine-tuned blocks differ from the
    frozen ones, and a fixed Bernoulli(0.5) decision matrix for the batch."""
    torch.manual_seed(0)
    net = SpotTuneNet(resnet26(NUM_CLASSES, args.width))
    net.add_domain(DOMAIN, NUM_CLASSES)
    with torch.no_grad():
        for parameter in net.domains[DOMAIN].tuned_blocks.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    net = net.to(device).eval()
    generator = torch.Generator().manual_seed(2)
    decisions = torch.bernoulli(torch.full((args.batch, net.num_blocks), 0.5), generator=generator)
    net.decisions = FixedDecisions(decisions.to(device))  # instance attribute: this net only
    x = torch.randn(args.batch, 3, args.size, args.size, generator=generator).to(device)
    return net, x, decisions


@torch.no_grad()
def bench_inference(args, device: torch.device) -> dict:
    net, x, decisions = half_tuned_net(args, device)
    routed_logits, _ = net(x, DOMAIN, "argmax", routed=True)
    dense_logits, _ = net(x, DOMAIN, "argmax", routed=False)
    max_diff = float((routed_logits - dense_logits).abs().max())
    tolerance = 1e-4 if device.type == "cpu" else 1e-2   # CUDA convolutions may use TF32
    if not torch.allclose(routed_logits, dense_logits, atol=tolerance, rtol=tolerance):
        raise SystemExit(f"routed and dense outputs differ (max |diff| {max_diff:.2e})")
    times = interleaved({"dense": lambda: net(x, DOMAIN, "argmax", routed=False),
                         "routed": lambda: net(x, DOMAIN, "argmax", routed=True)},
                        device, args.warmup, args.rounds, args.steps)
    return {**compare(times, "dense", "routed", args.steps, ROUTED_TARGET),
            "fraction_tuned": float(decisions.mean()), "max_abs_diff": max_diff}


def markdown(report: dict) -> str:
    m, c = report["machine"], report["config"]
    lines = [f"# Model benchmark ({m['device']})", "",
             f"{m['date']}; {m['device_name']}; torch {m['torch']}; {m['cpu_count']} CPUs, "
             f"{m['torch_threads']} torch threads; load average (1 min) "
             f"{m.get('load_average_1m_before', float('nan')):.2f} before, "
             f"{m.get('load_average_1m_after', float('nan')):.2f} after.", "",
             f"ResNet-26 width {c['width']}, batch {c['batch']} of 3x{c['size']}x{c['size']}; "
             f"{c['warmup']} warm-up calls, then {c['rounds']} alternating rounds of {c['steps']} "
             f"timed call(s) per side; medians, ratio of the medians (per-round median ratio in brackets).", "",
             "| comparison | baseline (ms) | method (ms) | ratio | target | |",
             "|---|---:|---:|---:|---:|---|"]
    t, i = report.get("training"), report.get("inference")
    if t:
        lines.append(f"| training step: spottune / finetune | {t['finetune']['median_ms']:.1f} | "
                     f"{t['spottune']['median_ms']:.1f} | {t['ratio']:.2f}x ({t['ratio_per_round_median']:.2f}x) | <= {t['target']}x | {t['verdict']} |")
    if i:
        lines.append(f"| inference: routed / dense ({100 * i['fraction_tuned']:.0f}% tuned) | "
                     f"{i['dense']['median_ms']:.1f} | {i['routed']['median_ms']:.1f} | "
                     f"{i['ratio']:.2f}x ({i['ratio_per_round_median']:.2f}x) | <= {i['target']}x | {i['verdict']} |")
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--only", choices=("training", "inference"), default=None)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default results/bench/models_<device type>.json; a .md goes beside it)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    report = {"machine": machine_info(device),
              "config": {k: getattr(args, k) for k in ("width", "batch", "size", "warmup", "rounds", "steps")}}
    if args.only in (None, "training"):
        report["training"] = t = bench_training(args, device)
        print(f"training step  finetune {t['finetune']['median_ms']:8.1f} ms  spottune "
              f"{t['spottune']['median_ms']:8.1f} ms  ratio {t['ratio']:.2f}x [per round {t['ratio_per_round_median']:.2f}x] "
              f"(target <= {TRAIN_TARGET}x) {t['verdict']}")
    if args.only in (None, "inference"):
        report["inference"] = i = bench_inference(args, device)
        print(f"inference      dense    {i['dense']['median_ms']:8.1f} ms  routed   "
              f"{i['routed']['median_ms']:8.1f} ms  ratio {i['ratio']:.2f}x [per round {i['ratio_per_round_median']:.2f}x] "
              f"(target <= {ROUTED_TARGET}x) {i['verdict']}  "
              f"[{100 * i['fraction_tuned']:.0f}% tuned, max |diff| {i['max_abs_diff']:.1e}]")
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
