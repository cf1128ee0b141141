"""GPU throughput of the full-width models: finetune vs SpotTune training, routed vs dense inference.

Full-width ResNet-26 on synthetic uint8 3x72x72 batches kept on the GPU and normalised
there every step, bf16 autocast and channels_last. For each batch size:
- training: the engine's step runners on the ``finetune`` and ``spottune`` methods, eager
  and replayed from a CUDA graph (images/s, median step time, peak memory); spottune /
  finetune ratios;
- inference: a one-domain ``SpotTuneNet`` in eval mode, its policy network run and a fixed
  50% decision matrix used, ``routed=True`` vs ``routed=False`` (checked to agree first, in
  float32), the plain ResNet-26 as a reference, and what ``routed=None`` picks;
- optionally ``torch.compile`` of the finetune network (in a child process, stopped at its
  time budget).
The whole run is budgeted (``--budget`` seconds, 420 by default); a part that would not
fit is skipped and reported. ``--quick``: batch 128 only, shorter timings, no compile.
Writes ``results/bench/gpu_<gpu name>.json``/``.md``.

    python bench/bench_gpu.py                  # on a CUDA machine
    python bench/bench_gpu.py --allow-cpu --quick --out-dir /tmp/bench   # CPU smoke test
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from _common import FixedDecisions, backbone_state, machine_info, slug, synchronize, write_report
from decathlon.benchmark import hparams
from decathlon.engine.step import EagerStep, GraphedStep
from decathlon.engine import configure_precision
from decathlon.methods import METHODS
from decathlon.models import SpotTuneNet, resnet26
from decathlon.models.routing import routing_pays
from _gpu_markdown import markdown
from _gpu_timing import (NUM_CLASSES, Settings, autocast, elapsed, measure, peak_gib, reset_memory,
                        synthetic_batch)

DOMAIN = "cifar100"


def build_method(name: str, s: Settings, precision: str = "bf16"):
    params = hparams(name, DOMAIN, "spottune_paper", {"width": s.width})
    torch.manual_seed(0)
    method = METHODS[name](NUM_CLASSES, params, backbone_state(s.width)).to(s.device)
    method = method.to(memory_format=torch.channels_last)
    configure_precision(method, precision, s.device)   # as the engine does with --precision
    return method


def bench_training(name: str, batch: int, s: Settings, graphs: bool) -> dict:
    """One method's training step, eager or replayed from a CUDA graph (the engine's runners)."""
    reset_memory(s.device)
    method = build_method(name, s)
    normalised, labels = synthetic_batch(batch, s.size, s.device)
    runner = GraphedStep(method) if graphs else EagerStep(method)
    step = lambda: runner(normalised(), labels)  # noqa: E731
    for _ in range(s.warmup):   # warm-up before the peak is reset: cudnn autotuning buffers, graph capture
        step()
    synchronize(s.device)
    reset_memory(s.device)
    result = measure(step, s, batch)
    result["peak_memory_gib"] = peak_gib(s.device)
    return result


@torch.no_grad()
def bench_inference(batch: int, s: Settings) -> dict:
    reset_memory(s.device)
    torch.manual_seed(0)
    net = SpotTuneNet(resnet26(NUM_CLASSES, s.width))
    net.add_domain(DOMAIN, NUM_CLASSES)
    for parameter in net.domains[DOMAIN].tuned_blocks.parameters():
        parameter.add_(0.05 * torch.randn_like(parameter))
    net = net.to(s.device).to(memory_format=torch.channels_last).eval()
    decisions = torch.bernoulli(torch.full((batch, net.num_blocks), 0.5), generator=torch.Generator().manual_seed(2))
    net.decisions = FixedDecisions(decisions.to(s.device), policy=net.decisions)   # the policy net runs too
    plain = resnet26(NUM_CLASSES, s.width).to(s.device).to(memory_format=torch.channels_last).eval()
    normalised, _ = synthetic_batch(batch, s.size, s.device, seed=1)

    x = normalised()
    routed32, _ = net(x, DOMAIN, "argmax", routed=True)      # agreement, in float32
    dense32, _ = net(x, DOMAIN, "argmax", routed=False)
    scale = float(dense32.abs().max())
    max_diff = float((routed32 - dense32).abs().max())
    if max_diff > 1e-2 * max(scale, 1.0):
        raise RuntimeError(f"routed and dense outputs differ: max |diff| {max_diff:.3g} (logit scale {scale:.3g})")
    with autocast(s.device):
        same_class = float((net(x, DOMAIN, "argmax", routed=True)[0].argmax(1)
                            == net(x, DOMAIN, "argmax", routed=False)[0].argmax(1)).float().mean())

    def forward(routed):
        def run():
            with autocast(s.device):
                return net(normalised(), DOMAIN, "argmax", routed=routed)
        return run

    def plain_forward():
        with autocast(s.device):
            return plain(normalised())

    result = {"dense": measure(forward(False), s, batch), "routed": measure(forward(True), s, batch),
              "resnet26": measure(plain_forward, s, batch), "auto_routes": routing_pays(x)}
    result["routed_over_dense"] = result["routed"]["step_ms"] / result["dense"]["step_ms"]
    result.update(fraction_tuned=float(decisions.mean()), max_abs_diff_fp32=max_diff,
                  bf16_same_argmax=same_class)
    return result


def compile_child(args) -> None:
    """Child process: compiled finetune training at one batch size; prints one JSON line."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    s = Settings(args, device)
    configure(device)
    reset_memory(device)
    method = build_method("finetune", s)
    # In place (nn.Module.compile), not Method.wrap(torch.compile): Method.train_net tests
    # the wrapper's truth value, which an OptimizedModule refuses (it raises on len()).
    method.net.compile()
    normalised, labels = synthetic_batch(args.batch, s.size, device)   # eager step, compiled network
    start = time.perf_counter()
    method.update(normalised(), labels)
    synchronize(device)
    compile_s = time.perf_counter() - start
    reset_memory(device)
    result = measure(lambda: method.update(normalised(), labels), s, args.batch)
    result.update(compile_s=compile_s, peak_memory_gib=peak_gib(device))
    print("RESULT " + json.dumps(result), flush=True)


def bench_compile(batch: int, s: Settings, budget: float) -> dict:
    """Compiled finetune in a child process, stopped after `budget` seconds."""
    command = [sys.executable, __file__, "--compile-child", "--batch", str(batch)]
    if s.device.type == "cpu":
        command.append("--allow-cpu")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "budget_s": round(budget)}
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"status": "failed", "returncode": done.returncode, "error": " | ".join(tail)[-500:]}
    return {"status": "ok", **json.loads(lines[-1][len("RESULT "):])}


def configure(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def run(s: Settings, log) -> dict:
    """Every part that fits in the budget; a part that fails or does not fit is recorded."""
    report = {"training": {}, "inference": {}, "compile": {}, "skipped": []}

    def part(section: str, key: str, estimate: float, fn):
        if elapsed() + estimate > s.budget:
            report["skipped"].append(f"{section} {key}: over the {s.budget:.0f} s budget")
            log(f"skip {section} {key} (budget)")
            return
        try:
            report[section][key] = fn()
        except Exception as error:   # noqa: BLE001 - reported, the other parts still run
            report[section][key] = {"status": "failed", "error": f"{type(error).__name__}: {error}"[:500]}
            if s.device.type == "cuda":
                torch.cuda.empty_cache()
        log(f"{section} {key}: {json.dumps(report[section][key])}")

    per_part = s.seconds + 10
    kinds = (("eager", False), ("cuda graph", True)) if s.device.type == "cuda" else (("eager", False),)
    for batch in s.batches:
        for kind, graphs in kinds:
            for name in ("finetune", "spottune"):
                part("training", f"{name} ({kind})_b{batch}", per_part,
                     lambda n=name, b=batch, g=graphs: bench_training(n, b, s, g))
            ft, st = (report["training"].get(f"{n} ({kind})_b{batch}", {}) for n in ("finetune", "spottune"))
            if "step_ms" in ft and "step_ms" in st:
                report["training"][f"ratio ({kind})_b{batch}"] = st["step_ms"] / ft["step_ms"]
    for batch in s.batches:
        part("inference", f"b{batch}", 3 * per_part, lambda b=batch: bench_inference(b, s))
    if s.compile:
        batch = s.batches[-1]
        budget = min(s.compile_budget, s.budget - elapsed() - 5)
        part("compile", f"finetune_b{batch}", 60, lambda: bench_compile(batch, s, budget))
        compiled, eager = report["compile"].get(f"finetune_b{batch}", {}), report["training"].get(f"finetune_b{batch}", {})
        if "step_ms" in compiled and "step_ms" in eager:
            compiled["speedup_over_eager"] = eager["step_ms"] / compiled["step_ms"]
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 128 only, short timings, no compile")
    parser.add_argument("--allow-cpu", action="store_true", help="without CUDA, run a tiny CPU smoke version")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the whole run")
    parser.add_argument("--seconds", type=float, help="seconds of timed calls per part (default 12; --quick 3)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="time torch.compile of finetune (default: on, off with --quick)")
    parser.add_argument("--compile-budget", type=float, default=180.0, help="seconds for the compile part")
    parser.add_argument("--out-dir", type=Path, default=Path("results/bench"))
    parser.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile_child:
        compile_child(args)
        return 0
    if not torch.cuda.is_available():
        if not args.allow_cpu:
            print("bench_gpu: no CUDA device here (torch.cuda.is_available() is False); nothing measured. "
                  "Run it on a GPU machine, or pass --allow-cpu for a tiny CPU smoke run of the code path.",
                  file=sys.stderr)
            return 1
        device = torch.device("cpu")
    else:
        device = torch.device("cuda")
    configure(device)
    s = Settings(args, device)
    machine = machine_info(device)
    print(f"bench_gpu on {machine['gpu_name']}, torch {machine['torch']}, budget {s.budget:.0f} s", flush=True)
    report = {"machine": machine, "settings": {"width": s.width, "size": s.size, "batches": s.batches,
                                                "warmup": s.warmup, "seconds_per_part": s.seconds,
                                                "quick": args.quick, "compile": s.compile, "budget_s": s.budget}}
    report.update(run(s, lambda line: print(f"[{elapsed():5.0f} s] {line}", flush=True)))
    report["elapsed_s"] = elapsed()
    report["imports_pycocotools"] = any(name.startswith("pycocotools") for name in sys.modules)
    name = "cpu-smoke" if device.type == "cpu" else slug(machine["gpu_name"])
    write_report(report, args.out_dir / f"gpu_{name}.json", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
