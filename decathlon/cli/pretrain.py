"""Pretrain the ResNet-26 backbone on imagenet12, the source domain; all methods start from it.

Trains from scratch on the imagenet12 shards and writes <out>/backbone.pt (with the
job's record and checkpoint beside it, so an interrupted pretraining resumes).
"""
from __future__ import annotations

from decathlon.cli.train import add_common_arguments, run_guarded


def add_arguments(parser) -> None:
    add_common_arguments(parser)


def run(args) -> int:
    from decathlon.engine.pretrain import pretrain
    from decathlon.benchmark.hparams import parse_overrides, pretrain_hparams

    def job():
        hp = pretrain_hparams(args.preset, parse_overrides(args.hparam))
        path = pretrain(args.data, args.out, hp, args.preset, args.seed, args.device,
                        args.compile, not args.no_progress, args.resume)
        print(f"backbone written to {path}")

    return run_guarded(job)
