"""Preparation throughput (images/s) with 1 vs 2 decoding workers on the same images.

Images come from the synthetic mini-decathlon (data_prep.synthetic), generated once
into a temporary folder; each timed run prepares them from scratch into its own output
folder (read, decode, crop, write, hash), generation excluded. Wall-clock rates depend on
what else runs on the machine, so the CPU seconds of the main process (reading, writing,
hashing) and of the workers (decoding) and the load average are printed as well.

    python bench/bench_prepare.py [--domains imagenet12,aircraft] [--scale 1.0] [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from data_prep import prepare
from data_prep.synthetic import generate


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _timed_prepare(source: Path, out: Path, domains: str, workers: int) -> dict:
    """Wall and CPU seconds of one preparation (pool workers are reaped before it returns)."""
    main_cpu, workers_cpu = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    manifest = prepare(source, out, domains=domains, workers=workers, progress=False)
    return {"wall": time.perf_counter() - start,
            "main_cpu": _cpu_seconds(resource.RUSAGE_SELF) - main_cpu,
            "workers_cpu": _cpu_seconds(resource.RUSAGE_CHILDREN) - workers_cpu,
            "images": sum(split["num_images"] for entry in manifest["domains"].values()
                          for split in entry["splits"].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", default="imagenet12,aircraft")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs per setting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        source = generate(Path(tmp) / "source", seed=0, scale=args.scale, domains=args.domains.split(","))
        rates = {}
        for workers in (1, 2):
            runs = [_timed_prepare(source, Path(tmp) / f"out-{workers}-{repeat}", args.domains, workers)
                    for repeat in range(args.repeats)]
            best = min(runs, key=lambda run: run["wall"])
            rates[workers] = best["images"] / best["wall"]
            print(f"workers={workers}: {best['images']} images in {best['wall']:.2f} s = {rates[workers]:.0f} "
                  f"images/s (CPU s: main {best['main_cpu']:.2f}, workers {best['workers_cpu']:.2f})")
        print(f"speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x "
              f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
