"""What several commands share: the job arguments (`train`, `pretrain`), the execution
arguments (also `run`), turning them into hyperparameter overrides and job keywords, and the
guard that turns an error a user can fix into one line and exit status 2."""
from __future__ import annotations

import sys

from decathlon.benchmark import PRESETS
from decathlon.engine import PRECISIONS
from decathlon.models import RESNET26, is_timm


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
    """--precision, --compile, --no-cuda-graphs, --no-cudnn-benchmark, --tensorboard (also `decathlon run`)."""
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="fp32 (TF32 allowed on CUDA) or bf16 autocast; default: the preset's (fp32); "
                             "recorded, and shown in the tables when it differs from the preset")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--no-cuda-graphs", action="store_true",
                        help="on CUDA, run the training step eagerly instead of replaying it from a CUDA graph")
    parser.add_argument("--no-cudnn-benchmark", action="store_true",
                        help="on CUDA, let cuDNN pick its algorithms by heuristics instead of timing them per shape "
                             "(the public codes time them); recorded")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write each job's record lines (losses, lr, val accuracy, SpotTune's policy "
                             "usage) as TensorBoard events into <job>/tensorboard/; recorded")


def execution_options(args) -> dict:
    """--no-cuda-graphs, --no-cudnn-benchmark and --tensorboard as JobSpec / BenchmarkConfig / pretrain keywords."""
    return {"cuda_graphs": False if args.no_cuda_graphs else None, "cudnn_benchmark": not args.no_cudnn_benchmark,
            "tensorboard": args.tensorboard}


def overrides_from(args) -> dict:
    """--hparam KEY=VALUE pairs plus --precision and the backbone options (--backbone-arch,
    --input-size, --patch-size), as hyperparameter overrides: recorded and hashed as --hparam
    is. The same value given twice is fine; two different values are refused."""
    from decathlon.benchmark import parse_overrides

    overrides = parse_overrides(args.hparam)
    if getattr(args, "precision", None):
        overrides["precision"] = args.precision
    for option, key, value in backbone_options(args):
        if key in overrides and overrides[key] != value:
            raise ValueError(f"{option} {_shown(value)} conflicts with --hparam {key}={_shown(overrides[key])}; "
                             "give one of them")
        overrides[key] = value
    return overrides


def backbone_arch(args) -> str:
    """The backbone arch the options name (for the methods defined on it); a conflict between
    them is left to the command, which refuses it in one line."""
    try:
        return overrides_from(args).get("arch", RESNET26)
    except ValueError:
        return RESNET26


def add_backbone_arguments(parser, weights: bool = True) -> None:
    """--backbone-arch, --input-size, --patch-size (hyperparameters arch, input_size, patch_size)
    and, where a job starts from a backbone, --backbone-weights."""
    parser.add_argument("--backbone-arch", metavar="ARCH",
                        help="the backbone: resnet26 (the preset's) or timm:<any timm.create_model name>, e.g. "
                             "timm:vit_small_patch16_224, timm:resnet50 (= --hparam arch=ARCH)")
    parser.add_argument("--input-size", type=input_size, metavar="N|native",
                        help="resize every batch to NxN before the backbone, or native: the 64/72 px images as "
                             "they are (= --hparam input_size)")
    parser.add_argument("--patch-size", type=positive_int, metavar="N",
                        help="a ViT's patch size (e.g. 8 for the native 72 px images; = --hparam patch_size)")
    if weights:
        parser.add_argument("--backbone-weights", metavar="FILE|timm-hub",
                            help="start from weights made elsewhere, for a timm arch: a safetensors file or a "
                                 "state dict (model.state_dict(); a pickle is refused), resampled to the input and "
                                 "patch size; or timm-hub: timm's own pretrained weights (downloads). Open track")


def input_size(text: str):
    """--input-size: 'native' or a positive integer."""
    return "native" if text == "native" else positive_int(text)


def positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# The backbone options: their argparse dest and the hyperparameter each one sets.
BACKBONE_OPTIONS = {"backbone_arch": "arch", "input_size": "input_size", "patch_size": "patch_size"}


def backbone_options(args) -> list:
    """(option, hyperparameter, value) of the backbone options given."""
    given = []
    for dest, key in BACKBONE_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is not None:
            option = "--" + dest.replace("_", "-")
            given.append((option, key, None if value == "native" else value))
    return given


def backbone_file(args, overrides: dict) -> str | None:
    """The backbone the jobs start from: --backbone (ours, or the public .t7) or
    --backbone-weights (weights made elsewhere, for a timm arch); not both."""
    weights = getattr(args, "backbone_weights", None)
    if weights and args.backbone:
        raise ValueError("--backbone and --backbone-weights both given; give one (--backbone: our backbone.pt or "
                         "the public .t7; --backbone-weights: weights made elsewhere, for a timm arch)")
    if weights and not is_timm(overrides.get("arch", RESNET26)):
        raise ValueError(f"--backbone-weights {weights}: for a timm arch (--backbone-arch timm:<name>); "
                         "ResNet-26 starts from --backbone (our backbone.pt or the public resnet26_pretrained.t7)")
    return weights or args.backbone


def _shown(value) -> str:
    import json

    return json.dumps(value)


def names_from(spec: str, valid: tuple, lookup) -> tuple:
    """A comma-separated list of names (or "all": `valid`), each checked by `lookup`, which
    raises KeyError for an unknown one."""
    if spec == "all":
        return valid
    names = tuple(name.strip() for name in spec.split(",") if name.strip())
    for name in names:
        lookup(name)
    return names


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
