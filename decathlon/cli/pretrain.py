"""Pretrain the backbone (ResNet-26, or any timm arch: --backbone-arch) on imagenet12, the source
domain, from random initialisation; all methods start from it (a closed-track backbone).

Trains from scratch on the imagenet12 shards and writes <out>/backbone.pt (with the
job's record and checkpoint beside it, so an interrupted pretraining resumes).
"""
from __future__ import annotations

from decathlon.cli.common import (add_backbone_arguments, add_common_arguments, execution_options, overrides_from,
                                  run_guarded)
from decathlon.cli.config_file import add_config_argument, apply_config, check_resolved_hparams


def add_arguments(parser) -> None:
    add_backbone_arguments(parser, weights=False)   # pretraining starts from random initialisation
    add_common_arguments(parser)
    add_config_argument(parser)   # last: it takes over the defaults of every option above


def check_arguments(args, parser):
    return apply_config(args, parser, job=True)


def run(args) -> int:
    from decathlon.benchmark import pretrain_hparams
    from decathlon.benchmark import job_extra
    from decathlon.engine import pretrain

    def job():
        overrides = overrides_from(args)
        hp = pretrain_hparams(args.preset, overrides)
        check_resolved_hparams(args, hp)
        path = pretrain(args.data, args.out, hp, job_extra(args.preset, overrides),
                        args.seed, args.device, args.compile, not args.no_progress, args.resume,
                        **execution_options(args))
        print(f"backbone written to {path}")

    return run_guarded(job)
