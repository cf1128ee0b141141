"""Choose per method and domain the sweep's best trial on val, run it under the preset's protocol, report.

Reads <sweep>/sweep.json and the trial jobs it drew (a job folder not drawn by it, or made
by other settings, is reported and never counted; unfinished trials are refused: relaunch
the sweep first), picks per (method, domain) the settings with the best mean val accuracy
over seeds under protocol train (ties: the lowest trial index) and writes
<sweep>/selection.json. The chosen settings then run for the sweep's seeds under the
preset's own protocol as ordinary, resumable jobs of --out (default <sweep>/selected), and
the tables (leaderboard.md/.tex, scores.csv, plots) go to --results (default
results/<sweep folder name>); each chosen row says "selected on val over N trials".
"""
from __future__ import annotations

from pathlib import Path

from decathlon.benchmark import select
from decathlon.cli.common import run_guarded
from decathlon.cli.launcher_args import check_launcher_arguments, launcher_config
from decathlon.cli.sweep import add_execution
from decathlon.files import ensure_dir
from decathlon.report import report


def add_arguments(parser) -> None:
    parser.add_argument("--sweep", required=True, type=Path, help="the sweep folder (holding sweep.json)")
    parser.add_argument("--out", type=Path, help="run folder of the chosen settings' jobs (default: <sweep>/selected)")
    parser.add_argument("--results", type=Path, help="tables and plots (default: results/<sweep folder name>)")
    add_execution(parser)


def check_arguments(args, parser):
    check_launcher_arguments(args, parser)
    return args


def run(args) -> int:
    def choose_and_report():
        results = ensure_dir(args.results or Path("results") / args.sweep.resolve().name, "--results")
        if args.out:   # checked before anything is chosen or run, not after
            ensure_dir(args.out, "--out")
        selection, run_dir = select(args.sweep, args.out, device=args.device, progress=not args.no_progress,
                                    launcher=launcher_config(args))
        for ignored in selection["ignored"]:
            print(f"ignored {ignored['path']}: {ignored['reason']}")
        for choice in selection["choices"]:
            print(f"{choice['method']} on {choice['domain']}: trial {choice['trial']} {choice['settings']} "
                  f"(val {100 * choice['val_accuracy']:.2f}% over {choice['trials']} trials)")
        report([run_dir], results)
    return run_guarded(choose_and_report)
