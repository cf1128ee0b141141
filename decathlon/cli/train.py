"""Train one method on one domain from the pretrained backbone, then evaluate it.

A multi-domain method (spottune_joint) takes several domains, comma-separated, in one job.

Writes the job folder: record.jsonl (one line per epoch), checkpoint.pt (each epoch,
atomically), predictions_<split>.npz, final.json and a `done` marker. An interrupted
job continues with --resume. Runs data-parallel under torchrun.
"""
from __future__ import annotations

import sys

from decathlon.benchmark.hparams import PRECISIONS, PRESETS
from decathlon.data.domains import DOMAIN_NAMES


def add_common_arguments(parser) -> None:
    """Arguments shared with `pretrain`."""
    parser.add_argument("--data", default="data/synthetic", help="prepared shard folder (default: %(default)s)")
    parser.add_argument("--out", required=True, help="job folder")
    parser.add_argument("--preset", default="cpu_demo", choices=PRESETS, help="hyperparameter preset")
    parser.add_argument("--hparam", action="append", metavar="KEY=VALUE",
                        help="override one hyperparameter (JSON value); repeatable")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_execution_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the job's last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_execution_arguments(parser) -> None:
    """--precision, --compile, --no-cuda-graphs, --no-cudnn-benchmark (shared with run_decathlon.py)."""
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="fp32 (TF32 allowed on CUDA) or bf16 autocast; default: the preset's (fp32); "
                             "recorded, and shown in the tables when it differs from the preset")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--no-cuda-graphs", action="store_true",
                        help="on CUDA, run the training step eagerly instead of replaying it from a CUDA graph")
    parser.add_argument("--no-cudnn-benchmark", action="store_true",
                        help="on CUDA, let cuDNN pick its algorithms by heuristics instead of timing them per shape "
                             "(the public codes time them); recorded")


def execution_options(args) -> dict:
    """--no-cuda-graphs and --no-cudnn-benchmark as JobSpec / BenchmarkConfig / pretrain keywords."""
    return {"cuda_graphs": False if args.no_cuda_graphs else None, "cudnn_benchmark": not args.no_cudnn_benchmark}


def overrides_from(args) -> dict:
    """--hparam KEY=VALUE pairs plus --precision, as hyperparameter overrides."""
    from decathlon.benchmark.hparams import parse_overrides

    overrides = parse_overrides(args.hparam)
    if args.precision:
        overrides["precision"] = args.precision
    return overrides


def add_arguments(parser) -> None:
    from decathlon.methods import METHODS

    parser.add_argument("--method", required=True, choices=list(METHODS))
    parser.add_argument("--domain", required=True, metavar="DOMAIN[,DOMAIN...]",
                        help=f"one of {', '.join(DOMAIN_NAMES)}; several for spottune_joint")
    parser.add_argument("--backbone", help="pretrained backbone.pt (from `python -m decathlon pretrain`)")
    parser.add_argument("--protocol", choices=("train", "trainval"),
                        help="fit on train (score val and test) or on train+val (score test); default: the "
                             "preset's (trainval for spottune_paper); recorded")
    add_common_arguments(parser)


def error_line(err: Exception) -> str:
    """The one line a user sees for an error they can fix: a KeyError's message without its
    quotes, an OSError (a full disk, a folder that cannot be written) with the file it hit."""
    if isinstance(err, KeyError) and err.args:
        return f"error: {err.args[0]}"
    if isinstance(err, OSError) and err.strerror:
        return f"error: {err.filename + ': ' if err.filename else ''}{err.strerror}"
    return f"error: {err}"


def run_guarded(job) -> int:
    """Run `job()`, turning the errors a user can fix into one clean line and exit 2:
    bad input (ValueError: manifests, checkpoints, options, a refused or diverged job, a
    locked folder), an unknown name (KeyError) and a failed read or write (OSError)."""
    try:
        job()
    except (KeyError, ValueError, OSError) as err:
        print(error_line(err), file=sys.stderr)
        return 2
    return 0


def run(args) -> int:
    from decathlon.benchmark.hparams import hparams, joint_hparams, preset_protocol
    from decathlon.benchmark.plan import domain_label, job_extra
    from decathlon.data.domains import parse_domains
    from decathlon.engine.trainer import JobSpec, run_job
    from decathlon.methods import get_method

    def job():
        overrides = overrides_from(args)
        domains = parse_domains(args.domain)
        joint = get_method(args.method).multi_domain
        if len(domains) > 1 and not joint:
            raise ValueError(f"method {args.method!r} trains one domain per job; got --domain {args.domain}")
        hp = (joint_hparams(args.method, domains, args.preset, overrides) if joint
              else hparams(args.method, domains[0], args.preset, overrides))
        final = run_job(JobSpec(args.method, domain_label(domains), args.data, args.out, hp,
                                protocol=args.protocol or preset_protocol(args.preset), seed=args.seed,
                                backbone=args.backbone, device=args.device, compile=args.compile,
                                progress=not args.no_progress, resume=args.resume,
                                **execution_options(args),
                                domains=domains if joint else (), extra=job_extra(args.preset, overrides)))
        for evaluation in final["evaluations"][::len(final["evaluations"]) // len(domains)]:
            for split, result in evaluation["splits"].items():
                if result["accuracy"] is not None:
                    print(f"{args.method} on {evaluation['domain']}: {split} accuracy "
                          f"{100 * result['accuracy']:.2f}% (eval {evaluation['eval_policy']})")

    return run_guarded(job)
