"""Import SpotTune's trained model of one domain (cv/<domain>/<domain>.t7) as a job folder.

FILE ({'net', 'agent'} as the SpotTune code saves it) is read without running it, as
by import-backbone. Its network must be SpotTune's ResNet-26 on BACKBONE (our
backbone.pt, e.g. from import-backbone, or the public resnet26_pretrained.t7): every
frozen block convolution must equal the backbone's (the first that differs is named);
its classifier must have the domain's number of classes. OUT receives
spottune_domain.pt, what one of our SpotTune jobs exports (a per-domain policy network,
the fine-tuned blocks, the domain's stem and BN layers, the classifier), and
imported.json, which assemble_spottune reads in place of final.json, so the authors'
models are evaluated and submitted with our tools.
"""
from __future__ import annotations

from pathlib import Path

from decathlon.cli.common import run_guarded
from decathlon.data import TARGET_DOMAINS


def add_arguments(parser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="SpotTune's cv/<domain>/<domain>.t7")
    parser.add_argument("--domain", required=True, choices=TARGET_DOMAINS, help="the domain FILE was trained on")
    parser.add_argument("--backbone", required=True, type=Path,
                        help="the backbone it was trained from: our backbone.pt or resnet26_pretrained.t7")
    parser.add_argument("--out", required=True, type=Path, help="job folder to write")


def run(args) -> int:
    from decathlon.checkpoints import import_spottune

    def job():
        _check_out(args.out)
        record = import_spottune(args.file, args.domain, args.backbone, args.out)
        print(f"imported {args.file} -> {args.out}: SpotTune on {args.domain} ({record['num_classes']} classes), "
              f"backbone {record['backbone']}")

    return run_guarded(job)


def _check_out(out: Path) -> None:
    """OUT is a job folder, made only by an import that succeeds: an existing folder must be
    writable; a new one's parent must be (refused: a file, a place that cannot be written)."""
    from decathlon.files import OutputError, ensure_dir, ensure_file_target

    if out.is_dir():
        ensure_dir(out, "--out")
    elif out.exists():
        raise OutputError(f"--out {out}: is a file, expected a folder")
    else:
        ensure_file_target(out, "--out")
