"""Import the residual-adapter authors' pretrained ResNet-26 (resnet26_pretrained.t7) as our backbone.pt.

FILE is read without running it: an allow-list unpickler takes only the classes and
tensor builders such a file needs and refuses anything else, naming it. FILE must be
the plain ResNet-26 (25 3x3 convs, 26 BNs, Linear(256, 1000); series or parallel
adapter nets are refused); its weights are mapped onto ours and written to OUT (arch
resnet26, width 1, the 1000-way imagenet12 classifier kept, FILE's name and sha256
recorded). Every method can then start from it: `decathlon train --backbone OUT ...`
(a backbone option also takes FILE itself, converted on the fly).
"""
from __future__ import annotations

from pathlib import Path

from decathlon.cli.common import run_guarded


def add_arguments(parser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="the public resnet26_pretrained.t7")
    parser.add_argument("--out", required=True, type=Path, help="backbone file to write, e.g. DIR/backbone.pt")


def run(args) -> int:
    from decathlon.checkpoints import import_backbone
    from decathlon.files import ensure_file_target

    def job():
        ensure_file_target(args.out, "--out")
        record = import_backbone(args.file, args.out)
        print(f"imported {args.file} (sha256 {record['sha256']}) -> {args.out}: "
              f"ResNet-26 at width 1 with its 1000-way classifier")

    return run_guarded(job)
