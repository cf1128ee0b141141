"""Train one method on one domain from the pretrained backbone, then evaluate it.

A multi-domain method (spottune_joint) takes several domains, comma-separated, in one job.

Writes the job folder: record.jsonl (one line per epoch), checkpoint.pt (each epoch,
atomically), predictions_<split>.npz, final.json and a `done` marker. An interrupted
job continues with --resume. Runs data-parallel under torchrun.
"""
from __future__ import annotations

from decathlon.cli.common import (add_backbone_arguments, add_common_arguments, backbone_file, execution_options,
                                  overrides_from, run_guarded)
from decathlon.cli.config_file import add_config_argument, apply_config, check_resolved_hparams
from decathlon.data import DOMAIN_NAMES


def add_arguments(parser) -> None:
    from decathlon.methods import METHODS

    parser.add_argument("--method", required=True, choices=list(METHODS))
    parser.add_argument("--domain", required=True, metavar="DOMAIN[,DOMAIN...]",
                        help=f"one of {', '.join(DOMAIN_NAMES)}; several for spottune_joint")
    parser.add_argument("--backbone", help="pretrained backbone.pt (from `python -m decathlon pretrain`)")
    add_backbone_arguments(parser)
    parser.add_argument("--teacher", metavar="JOB_DIR",
                        help="nettailor: the finished finetune job (same domain, seed, protocol, width) it distils from")
    parser.add_argument("--protocol", choices=("train", "trainval"),
                        help="fit on train (score val and test) or on train+val (score test); default: the "
                             "preset's (trainval for spottune_paper); recorded")
    add_common_arguments(parser)
    add_config_argument(parser)   # last: it takes over the defaults of every option above


def check_arguments(args, parser):
    return apply_config(args, parser, job=True)


def run(args) -> int:
    from decathlon.benchmark import hparams, joint_hparams, preset_protocol
    from decathlon.benchmark import domain_label, job_extra
    from decathlon.data import parse_domains
    from decathlon.engine import JobSpec, run_job
    from decathlon.methods import get_method

    def job():
        overrides = overrides_from(args)
        domains = parse_domains(args.domain)
        joint = get_method(args.method).multi_domain
        if len(domains) > 1 and not joint:
            raise ValueError(f"method {args.method!r} trains one domain per job; got --domain {args.domain}")
        hp = (joint_hparams(args.method, domains, args.preset, overrides) if joint
              else hparams(args.method, domains[0], args.preset, overrides))
        check_resolved_hparams(args, hp)
        final = run_job(JobSpec(args.method, domain_label(domains), args.data, args.out, hp,
                                protocol=args.protocol or preset_protocol(args.preset), seed=args.seed,
                                backbone=backbone_file(args, overrides), device=args.device, compile=args.compile,
                                progress=not args.no_progress, resume=args.resume,
                                **execution_options(args),
                                domains=domains if joint else (), extra=job_extra(args.preset, overrides),
                                teacher=args.teacher))
        for evaluation in final["evaluations"][::len(final["evaluations"]) // len(domains)]:
            for split, result in evaluation["splits"].items():
                if result["accuracy"] is not None:
                    print(f"{args.method} on {evaluation['domain']}: {split} accuracy "
                          f"{100 * result['accuracy']:.2f}% (eval {evaluation['eval_policy']})")

    return run_guarded(job)
