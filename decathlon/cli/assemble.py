"""Put SpotTune jobs together into one model file (spottune_multidomain.pt).

JOB_DIR... are finished per-domain SpotTune-variant jobs (one per domain, same backbone,
width and policy kind) or folders made by `decathlon import-spottune`. The file holds the
backbone and the shared policy trunk once and every domain; it loads in one call
(`SpotTuneNet.load`) without the run folder, and `decathlon predict` turns it into the
evaluation server's results.zip. (A spottune_joint job writes its own file.)

Checked before the file is written: --out (a writable place, not a folder), and the
backbone: the file at the path each job recorded must have the sha256 the job recorded
(final.json's `backbone`, imported.json's `backbone_provenance`), and all jobs must
record the same one. A mismatch exits 2 naming the path and both sha256.
"""
from __future__ import annotations

from pathlib import Path

from decathlon.cli.common import run_guarded


def add_arguments(parser) -> None:
    parser.add_argument("jobs", nargs="+", type=Path, metavar="JOB_DIR", help="SpotTune job folders, one per domain")
    parser.add_argument("--out", required=True, type=Path, help="the model file to write")


def run(args) -> int:
    from decathlon.inference import assemble_spottune, model_info
    from decathlon.checkpoints import save_atomic
    from decathlon.files import ensure_file_target

    def job():
        ensure_file_target(args.out, "--out")
        net = assemble_spottune(args.jobs)
        save_atomic(net.checkpoint(**model_info(args.jobs)), args.out)
        print(f"{args.out}: {len(net.domains)} domain(s) ({', '.join(net.domains)}), policy {net.policy_kind}, "
              f"#par {net.relative_size():.2f} (ResNet-26 units)")

    return run_guarded(job)
