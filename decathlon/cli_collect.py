"""Rebuild tables, plots and submission files of benchmark runs from their job records alone.

Reads the finished job folders of each RUN_DIR (final.json, record.jsonl,
predictions_*.npz; no data, no training code) and writes into --out:
leaderboard.md, leaderboard.tex, scores.csv, plots/*.png and
submissions/<preset>-<protocol>/results_<method>_seed<k>.json. Prints the markdown
leaderboard, which ends with the list of unfinished jobs (never counted).
Exit code 2 when a RUN_DIR is missing or holds no job folders.
"""
from __future__ import annotations

import sys
from pathlib import Path

PROG = "python -m decathlon collect"


def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="benchmark run folder (holding pretrain/ and jobs/); several are pooled")
    parser.add_argument("--out", type=Path,
                        help="output folder (default: results/<name of the first RUN_DIR>)")


def report(run_dirs: list, out: Path) -> None:
    """Collect `run_dirs`, write tables, plots and submissions into `out`, print a summary."""
    from decathlon.collect import collect
    from decathlon.plots import write_plots
    from decathlon.run_submissions import write_submissions
    from decathlon.tables import write_tables

    collection = collect(run_dirs)
    tables = write_tables(collection, out)
    plots = write_plots(collection, out)
    submissions = write_submissions(collection, out)
    print(tables[0].read_text())
    print(f"{len(collection.jobs)} finished job(s), {len(collection.incomplete)} incomplete; wrote "
          f"{', '.join(p.name for p in tables)} and {len(plots)} plot(s) to {out}")
    for row in submissions.itertuples():
        state = f"NOT WRITTEN: {row.problem}" if row.problem else \
            ("complete, ready to upload" if row.complete else f"partial ({row.domains} domain(s), {row.data} data)")
        print(f"  {row.file}: {row.entries:,} entries, {state}")


def run(args) -> int:
    from decathlon.collect import CollectError

    try:
        report(args.run_dirs, args.out or Path("results") / args.run_dirs[0].resolve().name)
    except CollectError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    return 0
