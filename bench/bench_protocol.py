"""The engine end to end on synthetic data at scale, and the paper protocols' projected wall time.

Measured on this device with the real engine (record.jsonl's `train_images_per_s` of the
epochs after the first, once CUDA graphs are captured and caches are warm; `eval_seconds`
for evaluation):
- pretraining (the paper presets' batch 256, imagenet12);
- one job at a time of each method family on each input geometry of the SpotTune
  protocol: 64x64 crops (cifar100), 72x72 (svhn), the whole 144x72 daimlerpedcls;
- `--jobs-per-device` jobs at once (default: the engine's default for this device) of
  finetune and spottune on cifar100, a few epochs longer: their images over the wall-clock
  span of their timed epochs, against one job's img/s (the concurrency);
- finetune and spottune on cifar100 once more with `--no-cudnn-benchmark` (cuDNN's heuristic
  choice of algorithms against the engine's default autotuning);
- imagenet12 train streamed from its shards with nothing training (what feeds pretraining
  where the split does not fit in GPU memory);
- the device's ceiling for those two steps: one batch of 1024 64-px images replayed from a
  CUDA graph. Jobs in separate processes share a GPU by time slices (without CUDA MPS), so together they
  cannot pass it: ceiling / one job bounds what several jobs at once can gain.
Projected from the real split sizes of the domain registry: the wall time of each paper
protocol (pretraining 60 epochs on imagenet12 train; every method x nine domains x epochs,
per-epoch val where the protocol has one, final evaluations with every test-time policy),
one job at a time and N at a time. Methods not timed take the rate of their family
(scratch, feature_extractor, bn_adapt: finetune, an upper bound as they skip gradients;
series_adapters: parallel_adapters; spottune_global, random_policy: spottune).
Writes results/bench/protocol_<device>.{json,md}.

    python bench/bench_protocol.py                                   # on a GPU
    python bench/bench_protocol.py --allow-cpu --smoke --out-dir /tmp/b   # CPU smoke run
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import machine_info, slug, write_report
from data_prep import prepare
from data_prep.synthetic import generate
from decathlon.benchmark import hparams, pretrain_hparams
from decathlon.launch import default_jobs_per_device, run_jobs
from decathlon.data import SOURCE_DOMAIN, output_hw
from decathlon.engine import JobSpec, pretrain
from decathlon.jobdir import read_final, read_records
from decathlon.methods import METHODS
from _device_limits import device_ceiling, streamed_rate
from _protocol_markdown import markdown
from _protocol_projection import project

GEOMETRY_DOMAINS = ("cifar100", "svhn", "daimlerpedcls")   # 64x64 crop, 72x72, 144x72 (SpotTune protocol)
TIMED = ("finetune", "parallel_adapters", "spottune")
CONCURRENT = ("finetune", "spottune")
CONCURRENT_EXTRA_EPOCHS = 4   # jobs at once run longer, so that spawning them does not decide the overlap


class Settings:
    def __init__(self, args, device: torch.device):
        smoke = args.smoke
        self.device, self.precision = device, args.precision
        self.scale = 0.25 if smoke else args.scale
        self.epochs = 2 if smoke else args.epochs
        self.overrides = {"epochs": self.epochs, "lr_milestones": [], "precision": args.precision}
        if smoke:
            self.overrides.update(width=0.125, batch_size=16, eval_batch_size=64)
        self.jobs_per_device = args.jobs_per_device or default_jobs_per_device(device)
        self.width = 0.125 if smoke else 1.0
        self.pretrain_hp = pretrain_hparams("spottune_paper",
                                            {k: v for k, v in self.overrides.items() if k != "eval_batch_size"})


def prepared_data(root: Path, scale: float) -> Path:
    """Synthetic imagenet12 + the geometry domains at `scale`, prepared (reused when present)."""
    domains = (SOURCE_DOMAIN, *GEOMETRY_DOMAINS)
    source = generate(root / "source", seed=0, scale=scale, domains=domains)
    out = root / f"shards-s{scale:g}"
    prepare(source, out, domains=domains, test_labels=root / "source" / "labels_test.zip", workers=os.cpu_count() or 2,
            progress=False)
    return out


def steady_rate(job: Path) -> dict:
    """Median training img/s over the epochs after the first, and evaluation img/s."""
    lines = read_records(job)
    steady = lines[1:] or lines
    final = read_final(job)
    val_images = (final["splits"].get("val") or {}).get("num_images") or 0
    eval_seconds = statistics.median(line["eval_seconds"] for line in steady)
    return {"train_images_per_s": statistics.median(line["train_images_per_s"] for line in steady),
            "eval_images_per_s": val_images / eval_seconds if eval_seconds > 0 else None,
            "step": final["execution"]["step"], "epochs_timed": len(steady)}


def aggregate_rate(jobs: list) -> float:
    """Training img/s of jobs run at once: every timed epoch's images (all but each job's
    first) over the wall-clock span from the first of those epochs' start to the last one's
    end. Epochs outside the overlap count too, so jobs that barely overlap read as ~1x."""
    epochs = [epoch for job in jobs for epoch in read_records(job)[1:]]
    images = sum(e["train_images_per_s"] * e["seconds"] for e in epochs)
    span = max(e["trained_until"] for e in epochs) - min(e["trained_until"] - e["seconds"] for e in epochs)
    return images / span


def job_spec(s: Settings, data: Path, out: Path, method: str, domain: str, seed: int, backbone: Path,
             extra_epochs: int = 0, cudnn_benchmark: bool = True) -> JobSpec:
    hp = hparams(method, domain, "spottune_paper", {**s.overrides, "epochs": s.epochs + extra_epochs})
    return JobSpec(method, domain, str(data), str(out), hp, protocol="train", seed=seed, backbone=str(backbone),
                   device=str(s.device), progress=False, data_parallel=False, cudnn_benchmark=cudnn_benchmark,
                   extra={"preset": "spottune_paper"})


def measure(s: Settings, data: Path, work: Path, log) -> dict:
    report = {"pretrain": {}, "streamed_source": {}, "single": {}, "concurrent": {}, "ceiling": {},
              "cudnn_heuristics": {}}
    started = time.perf_counter()
    hp = s.pretrain_hp
    backbone = pretrain(data, work / "pretrain", hp, {"preset": "spottune_paper"}, device=str(s.device),
                        progress=False)
    report["pretrain"] = steady_rate(work / "pretrain")
    log(f"pretrain: {report['pretrain']}")
    report["streamed_source"] = streamed_rate(s, data, hp)
    log(f"{SOURCE_DOMAIN} streamed: {report['streamed_source']}")
    for method in TIMED:
        for domain in GEOMETRY_DOMAINS:
            out = work / "single" / method / domain
            run_jobs([job_spec(s, data, out, method, domain, 0, backbone)], 1, torch.get_num_threads(), progress=False)
            report["single"][f"{method}/{domain}"] = steady_rate(out)
            log(f"single {method}/{domain}: {report['single'][f'{method}/{domain}']}")
    for method in CONCURRENT:   # the same job with cuDNN's heuristic algorithm choice (no effect on a CPU)
        out = work / "cudnn_heuristics" / method
        run_jobs([job_spec(s, data, out, method, GEOMETRY_DOMAINS[0], 0, backbone, cudnn_benchmark=False)], 1,
                 torch.get_num_threads(), progress=False)
        report["cudnn_heuristics"][method] = {**steady_rate(out), "job": f"{method}/{GEOMETRY_DOMAINS[0]}"}
        log(f"cudnn heuristics {method}: {report['cudnn_heuristics'][method]}")
    n = s.jobs_per_device
    for method in CONCURRENT:
        report["ceiling"][method] = device_ceiling(s, method)
        log(f"ceiling {method}: {report['ceiling'][method]}")
    for method in CONCURRENT:
        single = report["single"][f"{method}/{GEOMETRY_DOMAINS[0]}"]["train_images_per_s"]
        bound = report["ceiling"][method]["images_per_s"] / single
        if n == 1:   # one job at a time: nothing shares the device
            report["concurrent"][method] = {"jobs": 1, "summed_images_per_s": None, "over_one_job": 1.0,
                                            "ceiling_over_one_job": bound}
            continue
        outs = [work / "concurrent" / method / f"seed{seed}" for seed in range(n)]
        specs = [job_spec(s, data, out, method, GEOMETRY_DOMAINS[0], seed, backbone, CONCURRENT_EXTRA_EPOCHS)
                 for seed, out in enumerate(outs)]
        run_jobs(specs, n, max(1, torch.get_num_threads() // n), progress=False)
        together = aggregate_rate(outs)
        report["concurrent"][method] = {"jobs": n, "summed_images_per_s": together, "over_one_job": together / single,
                                        "ceiling_over_one_job": bound}
        log(f"concurrent {method} x{n}: {report['concurrent'][method]}")
    report["measure_s"] = time.perf_counter() - started
    return report


def geometry_of(domain: str, protocol_augmentation: str) -> str:
    """The measured domain whose network input has this domain's size under the protocol."""
    size = output_hw(domain, protocol_augmentation, True)
    for measured in GEOMETRY_DOMAINS:
        if output_hw(measured, "spottune", True) == size:
            return measured
    return GEOMETRY_DOMAINS[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--allow-cpu", action="store_true", help="without CUDA, run on the CPU")
    parser.add_argument("--smoke", action="store_true", help="tiny data and network: checks the code path only")
    parser.add_argument("--scale", type=float, default=24.0, help="synthetic data scale (default 24)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per job, the first untimed (default 4)")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--jobs-per-device", type=int, help="jobs at once (default: the engine's for this device)")
    parser.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "decathlon-bench")
    parser.add_argument("--out-dir", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("bench_protocol: no CUDA device here; pass --allow-cpu to run on the CPU", file=sys.stderr)
        return 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    s = Settings(args, device)
    started = time.perf_counter()

    def log(line):
        print(f"[{time.perf_counter() - started:5.0f} s] {line}", flush=True)

    data = prepared_data(args.data_root, s.scale)
    log(f"data ready: {data}")
    with tempfile.TemporaryDirectory(prefix="bench-protocol-") as work:
        report = measure(s, data, Path(work), log)
    finetune_hp = hparams("finetune", "cifar100", "spottune_paper", s.overrides)
    report["machine"] = machine_info(device)
    report["settings"] = {"scale": s.scale, "epochs": s.epochs, "precision": s.precision,
                          "width": finetune_hp["width"], "batch": finetune_hp["batch_size"],
                          "pretrain_batch": s.pretrain_hp["batch_size"]}
    report["projections"] = project(report, geometry_of, tuple(METHODS), s.jobs_per_device)
    name = "cpu" if device.type == "cpu" else slug(report["machine"]["gpu_name"])
    write_report(report, args.out_dir / f"protocol_{name}{'-smoke' if args.smoke else ''}.json", markdown)
    print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
