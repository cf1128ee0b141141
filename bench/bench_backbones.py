"""Each method's training step against finetune on the same timm backbone, in one run.

For every backbone (default: ViT-S/16 and ResNet-50 at the recorded input size), every
method defined on it is built over the same seeded random backbone and timed on the same
batch: one step (forward, backward, optimizer step; the engine's `EagerStep`), the sides
interleaved round by round (bench_models.interleaved: the order alternates, so a change in
machine load hits every side). Reported per method: the median step, its ratio over the
same backbone's finetune step, training images per second, the parameters it trains and,
on CUDA, its peak memory (max allocated over its own steps). No target: the figures say
what a method costs on a backbone, beside what it scores.

    python bench/bench_backbones.py                         # CPU, batch 8, ViT-S/16 and ResNet-50 at 224
    python bench/bench_backbones.py --device cuda --batch 128 --bf16
    python bench/bench_backbones.py --archs timm:vit_small_patch16_224 --input-size native --patch-size 8
"""
from __future__ import annotations

import argparse
import os
import statistics
from functools import partial
from pathlib import Path

import torch

from _common import machine_info, write_report
from bench_models import interleaved, summary
from decathlon.benchmark import hparams
from decathlon.engine import autocast_for
from decathlon.engine.step import EagerStep
from decathlon.methods import METHODS
from decathlon.methods.base import check_backbone
from decathlon.models import is_vit, network_of

DOMAIN = "cifar100"   # any domain: the cpu_demo preset's hyperparameters, the backbone overridden
NUM_CLASSES = 100
OPEN_TRACK_METHODS = ("finetune", "feature_extractor", "bn_adapt", "bitfit", "lora", "vpt", "adaptformer", "spottune")


def methods_on(arch: str) -> list:
    """The open-track methods defined on `arch` (vpt and adaptformer on ViTs only)."""
    kept = []
    for name in OPEN_TRACK_METHODS:
        try:
            check_backbone(METHODS[name], arch)
        except ValueError:
            continue
        kept.append(name)
    return kept


def build(name: str, backbone: dict, state: dict, device: torch.device, precision: str):
    torch.manual_seed(0)
    method = METHODS[name](NUM_CLASSES, hparams(name, DOMAIN, "cpu_demo", backbone), state).to(device)
    method.autocast = autocast_for(precision, device)
    return method


def peak_memory_mib(step, device: torch.device):
    """CUDA: the most memory one more step of this method allocates; None elsewhere."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def bench_backbone(arch: str, args, device: torch.device) -> dict:
    size = None if args.input_size == "native" else int(args.input_size)
    patch = args.patch_size if is_vit(arch) else None   # --patch-size applies to the ViTs only
    backbone = {"arch": arch, "input_size": size, "patch_size": patch}
    torch.manual_seed(0)
    state = network_of(hparams("finetune", DOMAIN, "cpu_demo", backbone), NUM_CLASSES).state_dict()
    generator = torch.Generator().manual_seed(1)
    side = size or args.native_side
    x = torch.randn(args.batch, 3, side, side, generator=generator).to(device)
    y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=generator).to(device)
    methods = {name: build(name, backbone, state, device, "bf16" if args.bf16 else "fp32") for name in methods_on(arch)}
    steps = {name: partial(EagerStep(method), x, y) for name, method in methods.items()}
    memory = {name: peak_memory_mib(step, device) for name, step in steps.items()}
    times = interleaved(steps, device, args.warmup, args.rounds)
    base = statistics.median(times["finetune"])
    rows = {}
    for name, seconds in times.items():
        median = statistics.median(seconds)
        trained = sum(p.numel() for p in methods[name].net.parameters() if p.requires_grad)
        rows[name] = {**summary(seconds), "over_finetune": median / base, "train_images_per_s": args.batch / median,
                      "trained_parameters": trained, "peak_memory_mib": memory[name]}
    return {"arch": arch, "input_size": size or f"native {side}", "patch_size": patch, "methods": rows}


def markdown(report: dict) -> str:
    config = report["config"]
    lines = [f"# Step cost per method on timm backbones ({report['machine'].get('device_name', config['device'])})", "",
             f"Batch {config['batch']}, {'bf16' if config['bf16'] else 'fp32'}, {config['rounds']} interleaved rounds "
             f"after {config['warmup']} warm-up steps; ratio = median step over the same backbone's finetune step. "
             f"Measured {report['machine'].get('date', '')}.", ""]
    for result in report["backbones"]:
        lines += [f"## {result['arch']} (input {result['input_size']}"
                  + (f", patch {result['patch_size']}" if result["patch_size"] else "") + ")", "",
                  "| method | step (ms) | x finetune | train img/s | trained params | peak MiB |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, row in result["methods"].items():
            memory = "—" if row["peak_memory_mib"] is None else f"{row['peak_memory_mib']:.0f}"
            lines.append(f"| {name} | {row['median_ms']:.1f} | {row['over_finetune']:.2f} | "
                         f"{row['train_images_per_s']:.1f} | {row['trained_parameters']:,} | {memory} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--archs", default="timm:vit_small_patch16_224,timm:resnet50")
    parser.add_argument("--input-size", default="224", help="N (resized to NxN) or native (the loaders' images)")
    parser.add_argument("--native-side", type=int, default=72, help="image side timed with --input-size native")
    parser.add_argument("--patch-size", type=int, default=None, help="a ViT's patch size (default: the arch's own)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch threads on the CPU (default: torch's)")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default results/bench/backbones_<device type>.json; a .md beside it)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"machine": machine_info(device),
              "config": {k: getattr(args, k) for k in ("device", "batch", "warmup", "rounds", "bf16", "input_size",
                                                       "patch_size")},
              "backbones": []}
    for arch in args.archs.split(","):
        result = bench_backbone(arch.strip(), args, device)
        report["backbones"].append(result)
        for name, row in result["methods"].items():
            print(f"{arch:32s} {name:18s} {row['median_ms']:9.1f} ms  {row['over_finetune']:5.2f}x finetune  "
                  f"{row['train_images_per_s']:8.1f} img/s", flush=True)
    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_1m_after"] = os.getloadavg()[0]
    write_report(report, args.out or Path("results/bench") / f"backbones_{device.type}.json", markdown)
    return report


if __name__ == "__main__":
    main()
