"""The whole Visual Domain Decathlon end to end: pretrain, train every method, score, report.

`decathlon run` and `python run_decathlon.py` are this command.

With no arguments it runs the CPU demo on the prepared synthetic mini-decathlon
(`make run` prepares it first). Rerunning the same command skips finished jobs and
resumes unfinished ones. Under `torchrun --nproc_per_node=N` pretraining runs
data-parallel and the per-domain jobs are spread over the processes; with `--launcher slurm`
the backbone's job and then each wave of jobs are submitted to SLURM (submitit job arrays).
Results (tables, plots, submission files) go to results/<run name>/.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from decathlon.benchmark import PRESETS, BenchmarkConfig, run_benchmark
from decathlon.cli.common import (add_backbone_arguments, add_execution_arguments, backbone_arch, backbone_file,
                                  error_line, execution_options, names_from, overrides_from)
from decathlon.cli.config_file import add_config_argument, apply_config, settings_of
from decathlon.cli.launcher_args import add_launcher_arguments, check_launcher_arguments, launcher_config
from decathlon.data import TARGET_DOMAINS, get_domain
from decathlon.engine import distributed
from decathlon.files import ensure_dir
from decathlon.methods import METHODS, default_methods, get_method, methods_on
from decathlon.report import report


def add_arguments(parser) -> None:
    parser.add_argument("--data", default="data/synthetic", help="prepared shard folder (default: %(default)s)")
    parser.add_argument("--methods", default="default",
                        help="comma-separated; default: the ResNet-26 board's methods on resnet26 (every method "
                             "below but bitfit, lora, vpt, adaptformer), every method defined on the backbone "
                             f"otherwise; all: every method defined on the backbone. Methods: {', '.join(METHODS)}")
    parser.add_argument("--domains", default="all", help="comma-separated target domains, or all nine")
    parser.add_argument("--preset", default="cpu_demo", choices=PRESETS,
                        help="hyperparameter preset: the CPU demo or a paper's protocol (default: %(default)s); "
                             "--config PRESET is the same")
    parser.add_argument("--protocol", choices=("train", "trainval"),
                        help="fit on train and score val+test, or fit on train+val and score test; default: "
                             "the preset's own (trainval for spottune_paper and spottune_intended, else train)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per (method, domain) job")
    parser.add_argument("--out", help="run folder (default: runs/<config>-<synthetic|real>)")
    parser.add_argument("--results", help="where tables and plots go (default: results/<run folder name>)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--backbone", help="start every job from this backbone instead of pretraining one: our "
                                           "backbone.pt or the public resnet26_pretrained.t7 (converted as "
                                           "`decathlon import-backbone` does); recorded in every result")
    add_backbone_arguments(parser)
    parser.add_argument("--hparam", action="append", metavar="KEY=VALUE", help="override a hyperparameter")
    add_execution_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_launcher_arguments(parser)
    add_config_argument(parser)   # last: it takes over the defaults of every option above


def check_arguments(args, parser) -> argparse.Namespace:
    """The checks argparse cannot make itself (names, ranges); a failure is a usage error."""
    args = apply_config(args, parser)
    try:
        arch = backbone_arch(args)
        args.methods = (default_methods(arch) if args.methods == "default"
                        else names_from(args.methods, methods_on(arch), get_method))
        args.domains = names_from(args.domains, TARGET_DOMAINS, get_domain)
    except KeyError as err:
        parser.error(err.args[0])
    if "imagenet12" in args.domains:
        parser.error("imagenet12 is the source domain (pretraining); choose targets among the other nine")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    check_launcher_arguments(args, parser)
    return args


def parse_args(argv=None, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return check_arguments(parser.parse_args(argv), parser)


def run(args) -> int:
    """`decathlon run`: the benchmark, then the report."""
    try:
        overrides = overrides_from(args)
        config = BenchmarkConfig(args.data, args.out, args.methods, args.domains, args.preset, args.protocol,
                                 args.seeds, args.device, overrides, args.compile, not args.no_progress,
                                 **execution_options(args),
                                 jobs_per_device=args.jobs_per_device, threads_per_job=args.threads_per_job,
                                 backbone=backbone_file(args, overrides))
        if args.results:   # checked before hours of training, not after
            ensure_dir(args.results, "--results")
        run_benchmark(config, launcher_config(args), {**settings_of(args), "protocol": config.protocol})
        if distributed.init(args.device).is_main:
            report([Path(config.out)], ensure_dir(args.results or Path("results") / Path(config.out).name,
                                                  "--results"))
    except (KeyError, ValueError, OSError) as err:   # manifests, checkpoints, options, locks, disks
        print(error_line(err), file=sys.stderr)
        return 2
    return 0


def main(argv=None, prog: str | None = None) -> int:
    return run(parse_args(argv, prog))
