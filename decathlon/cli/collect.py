"""Rebuild tables, plots and submission files of benchmark runs from their job records alone.

Reads the finished job folders of each RUN_DIR (final.json, record.jsonl,
predictions_*.npz; no data, no training code) and writes into --out:
leaderboard.md, leaderboard.tex, scores.csv, plots/*.png, the self-contained page
index.html and submissions/<preset>-<protocol>/results_<method>_seed<k>.json; with
--screenshot also index.png, the page rendered by headless Chromium. Prints the markdown
leaderboard, which ends with the list of incomplete jobs (never counted): unfinished ones,
and finished ones whose final.json or a predictions file it names is missing or damaged
(the file is named). Each submission line names the domains it lacks; a real-data one
that lacks any is written as results_<method>_seed<k>.partial.json.
Exit code 2 when a RUN_DIR is missing or holds no job folders, or when --out (or the
default results/<name>) is a file or cannot be written, or when --screenshot finds no Chromium;
checked before anything is read.
"""
from __future__ import annotations

import sys
from pathlib import Path

PROG = "decathlon collect"


def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="benchmark run folder (holding pretrain/ and jobs/); several are pooled")
    parser.add_argument("--out", type=Path,
                        help="output folder (default: results/<name of the first RUN_DIR>)")
    parser.add_argument("--screenshot", action="store_true",
                        help="also render index.html into index.png with headless Chromium (1400x2000)")


def run(args) -> int:
    from decathlon.files import OutputError, ensure_dir
    from decathlon.report import PAGE_NAME, BrowserError, CollectError, report, require_chromium, screenshot

    try:
        out = ensure_dir(args.out or Path("results") / args.run_dirs[0].resolve().name, "--out")
        if args.screenshot:
            require_chromium("--screenshot")
        report(args.run_dirs, out)
        if args.screenshot:
            print(f"wrote {screenshot(out / PAGE_NAME, out / 'index.png')}")
    except (BrowserError, CollectError, OutputError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    return 0
