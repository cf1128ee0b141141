"""GPU throughput of the full-width models: finetune vs SpotTune training, routed vs dense inference.

Full-width (1.0) ResNet-26 on synthetic full-size batches: random uint8 3x72x72 images
kept on the GPU and normalised there every step, as the shard loader delivers them; bf16
autocast and channels_last, as the engine trains on CUDA. For each batch size:

- training: ``update()`` of the ``finetune`` and ``spottune`` methods (images/s, median
  step time, peak ``torch.cuda.max_memory_allocated``); ratio spottune / finetune;
- inference: a one-domain ``SpotTuneNet`` in eval mode with a fixed decision matrix where
  each (image, block) decision is 1 with probability 0.5, ``routed=True`` vs
  ``routed=False`` (checked to agree first, in float32), and the plain ResNet-26 as a
  reference; ratio routed / dense (time per batch);
- optionally ``torch.compile`` of the finetune network (in a child process, so a compile
  that overruns its time budget is stopped and reported, as is one that fails).

The whole run is budgeted (``--budget`` seconds, 420 by default: under 8 minutes with
start-up); a part that would not fit is skipped and reported. ``--quick``: batch 128
only, shorter timings, no compile (about a minute). Imports only torch and
decathlon.{models, methods, hparams}. Writes ``results/bench/gpu_<gpu name>.json``/``.md``.

    python bench/bench_gpu.py                  # on a CUDA machine
    python bench/bench_gpu.py --allow-cpu --quick --out-dir /tmp/bench   # CPU smoke test
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from decathlon.benchmark.hparams import hparams
from decathlon.methods import METHODS
from bench_common import FixedDecisions, backbone_state, machine_info, slug, synchronize
from decathlon.models import SpotTuneNet, resnet26
from gpu_markdown import markdown

DOMAIN = "cifar100"
NUM_CLASSES = 100
MEAN = (0.485, 0.456, 0.406)   # any fixed values: the cost of normalising is what counts
STD = (0.229, 0.224, 0.225)
STARTED = time.perf_counter()


class Settings:
    """What a run measures: full GPU run, --quick, or the tiny CPU smoke version."""

    def __init__(self, args, device: torch.device):
        self.device = device
        cpu = device.type == "cpu"
        self.width = 0.125 if cpu else 1.0
        self.size = 32 if cpu else 72
        self.batches = [8] if cpu else ([128] if args.quick else [128, 256])
        self.warmup = 1 if cpu else (3 if args.quick else 5)
        self.min_steps = 3 if cpu else 5
        self.seconds = 1.0 if cpu else (3.0 if args.quick else 12.0)   # per timed part
        self.max_steps = 6 if cpu else 200
        self.compile = args.compile if args.compile is not None else not (args.quick or cpu)
        self.compile_budget = args.compile_budget
        self.budget = args.budget


def elapsed() -> float:
    return time.perf_counter() - STARTED


def reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16)


def synthetic_batch(batch: int, size: int, device: torch.device, seed: int = 0):
    """uint8 images and labels on the device, and the on-device normalisation."""
    generator = torch.Generator(device=device).manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch,), device=device, generator=generator)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255
    inv_std = 1 / (torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255)

    def normalised() -> torch.Tensor:
        x = (images.float() - mean) * inv_std
        return x.contiguous(memory_format=torch.channels_last)

    return normalised, labels


def measure(fn, s: Settings, images: int) -> dict:
    """Warm-up calls, then timed calls (synchronised) for about `s.seconds`; medians."""
    for _ in range(s.warmup):
        fn()
    synchronize(s.device)
    times, start = [], time.perf_counter()
    while len(times) < s.min_steps or (time.perf_counter() - start < s.seconds and len(times) < s.max_steps):
        t0 = time.perf_counter()
        fn()
        synchronize(s.device)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"step_ms": 1e3 * median, "images_per_s": images / median, "steps": len(times)}


def build_method(name: str, s: Settings):
    params = hparams(name, DOMAIN, "spottune_paper", {"width": s.width})
    torch.manual_seed(0)
    method = METHODS[name](NUM_CLASSES, params, backbone_state(s.width)).to(s.device)
    method = method.to(memory_format=torch.channels_last)
    method.autocast = lambda: autocast(s.device)   # as the engine does on CUDA
    return method


def bench_training(name: str, batch: int, s: Settings) -> dict:
    reset_memory(s.device)
    method = build_method(name, s)
    normalised, labels = synthetic_batch(batch, s.size, s.device)
    step = lambda: method.update(normalised(), labels)  # noqa: E731
    for _ in range(s.warmup):   # warm-up before the peak is reset: cudnn autotuning buffers
        step()
    synchronize(s.device)
    reset_memory(s.device)
    result = measure(step, s, batch)
    result["peak_memory_gib"] = peak_gib(s.device)
    del method
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
    net.decisions = FixedDecisions(decisions.to(s.device))
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
              "resnet26": measure(plain_forward, s, batch)}
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
    normalised, labels = synthetic_batch(args.batch, s.size, device)
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
    for batch in s.batches:
        for name in ("finetune", "spottune"):
            part("training", f"{name}_b{batch}", per_part, lambda n=name, b=batch: bench_training(n, b, s))
        ft, st = (report["training"].get(f"{n}_b{batch}", {}) for n in ("finetune", "spottune"))
        if "step_ms" in ft and "step_ms" in st:
            report["training"][f"ratio_b{batch}"] = st["step_ms"] / ft["step_ms"]
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
    out = args.out_dir / f"gpu_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
