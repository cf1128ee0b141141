"""The three data commands, `download`, `prepare` and `verify`: their arguments and what each
runs. `decathlon <command>` and `python -m data_prep <command>` are built from these.

Each `run_*` returns the exit status: 0 done, 1 (verify) problems found, 2 bad input or
output state (one line, `error: ...`), 130 interrupted.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from data_prep.download import FILES, RECORDS_NAME, download
from data_prep.errors import PrepareError
from data_prep.preparation import DEFAULT_SHARD_SIZE, prepare
from data_prep.verification import verify
from decathlon.data import MANIFEST_NAME, ManifestError
from decathlon.files import OutputError, ensure_dir
from decathlon.resources import labels_test_zip

SYNTHETIC_SOURCE = Path("data/synthetic-source")
SYNTHETIC_OUT = Path("data/synthetic")
REAL_OUT = Path("data/decathlon")


def add_prepare_arguments(p) -> None:
    p.add_argument("--source", type=Path, help="extracted decathlon-1.0 folder (or its parent), or a folder "
                   "holding the downloaded tarballs; without it a synthetic mini-decathlon is generated "
                   f"into {SYNTHETIC_SOURCE} and prepared")
    p.add_argument("--out", type=Path, help=f"output folder (default {SYNTHETIC_OUT} for synthetic data, "
                   f"{REAL_OUT} with --source)")
    p.add_argument("--domains", help="comma-separated domain names (default: all ten)")
    p.add_argument("--test-labels", type=Path, help="zip or folder of labelled <domain>_test.json files; "
                   "default: the public labels_test.zip this package ships (real data) or the generated "
                   "one (synthetic data)")
    p.add_argument("--no-test-labels", action="store_true",
                   help="keep the test split unlabelled (label -1), as the devkit's stripped files are")
    p.add_argument("--workers", type=int, default=2, help="decoding processes (default 2)")
    p.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                   help=f"images per shard (default {DEFAULT_SHARD_SIZE})")
    p.add_argument("--seed", type=int, help="synthetic data only: generator seed (default 0)")
    p.add_argument("--scale", type=float, help="synthetic data only: size multiplier (default 1.0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_verify_arguments(v) -> None:
    v.add_argument("out", type=Path, help="a prepared folder (holding manifest.json)")


def add_download_arguments(d) -> None:
    d.add_argument("dest", type=Path, help="folder for the tarballs, then given to prepare --source")
    d.add_argument("--files", default=",".join(FILES),
                   help=f"comma-separated, from {','.join(FILES)} (default: all three)")
    d.add_argument("--mirror", help="base address (http:// or https://) serving the same file names, "
                   "instead of the official ones")
    d.add_argument("--retries", type=int, default=5,
                   help="retries per file after a dropped connection, timeout or HTTP 5xx (default 5)")
    d.add_argument("--timeout", type=float, default=60, help="socket timeout in seconds (default 60)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")


def _prepare(args) -> int:
    test_labels = args.test_labels
    if args.source is None:
        from data_prep.synthetic import LABELS_ZIP, generate
        from decathlon.data import parse_domains
        try:
            domains = parse_domains(args.domains)
        except KeyError as err:
            raise PrepareError(err.args[0]) from None
        if args.scale is not None and not (math.isfinite(args.scale) and args.scale > 0):
            raise PrepareError(f"--scale {args.scale}: expected a positive size multiplier (1.0: the default size)")
        if args.seed is not None and args.seed < 0:
            raise PrepareError(f"--seed {args.seed}: expected 0 or more")
        ensure_dir(args.out or SYNTHETIC_OUT, "--out")  # before the generator's work
        print(f"generating the synthetic mini-decathlon in {SYNTHETIC_SOURCE} ...", file=sys.stderr)
        source = generate(SYNTHETIC_SOURCE, seed=args.seed or 0, scale=1.0 if args.scale is None else args.scale,
                          domains=domains)
        test_labels = test_labels or SYNTHETIC_SOURCE / LABELS_ZIP
        out = args.out or SYNTHETIC_OUT
    elif args.seed is not None or args.scale is not None:
        raise PrepareError("--seed and --scale apply only to synthetic data (no --source)")
    else:
        source, out = args.source, args.out or REAL_OUT
        test_labels = test_labels or labels_test_zip()
    if args.no_test_labels:
        if args.test_labels:
            raise PrepareError("--test-labels and --no-test-labels exclude each other")
        test_labels = None
    manifest = prepare(source, out, args.domains, test_labels, args.workers, args.shard_size,
                       progress=not args.quiet)
    splits = sum(len(entry["splits"]) for entry in manifest["domains"].values())
    print(f"prepared {out}: {len(manifest['domains'])} domains, {splits} splits "
          f"({'synthetic' if manifest['synthetic'] else 'real'} data); manifest {out / MANIFEST_NAME}")
    return 0


def _download(args) -> int:
    records = download(args.dest, args.files, args.mirror, progress=not args.quiet, retries=args.retries,
                       timeout=args.timeout)
    print(f"{args.dest}: {', '.join(records)} complete and recorded in {args.dest / RECORDS_NAME}; "
          f"next: make prepare-data SOURCE={args.dest}")
    return 0


def _verify(args) -> int:
    report = verify(args.out)
    print("\n".join(report.checked))
    if report.ok:
        print(f"verified {args.out}: every shard matches the manifest, every domain is complete, "
              "nothing is left of an interrupted run")
        return 0
    print(f"\n{len(report.problems)} problems in {args.out}:", file=sys.stderr)
    print("\n".join(f"  {problem}" for problem in report.problems), file=sys.stderr)
    return 1


def _guarded(command: str, work, args) -> int:
    try:
        return work(args)
    except (PrepareError, ManifestError, OutputError, OSError) as err:  # OSError: e.g. disk full, unreadable file
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = "the file in progress stays as <name>.part" if command == "download" else \
            "no partial shard was kept"
        print(f"interrupted: {kept}; run the same command again to resume", file=sys.stderr)
        return 130


def run_prepare(args) -> int:
    return _guarded("prepare", _prepare, args)


def run_verify(args) -> int:
    return _guarded("verify", _verify, args)


def run_download(args) -> int:
    return _guarded("download", _download, args)
