"""Leaderboard writers: leaderboard.md, leaderboard.tex (booktabs) and scores.csv.

Every table is captioned with its data kind (SYNTHETIC or real), preset, protocol and
split, and with the baseline S was computed against. scores.csv is the tidy form: one
row per table x method x metric, where metric is a domain folder name (accuracy in %),
`mean` (%), `S`, `#par` or a cost metric (`gflops_per_image`, `train_images_per_s`,
`device_hours`, `peak_memory_mib`), with mean, se (std / sqrt(n), empty when n = 1) and n seeds;
published rows have source `published` and no n. Every row says what it stands on: `track`
(closed or open), `arch`, `input_size` ('native' or 'N px'), `patch_size` and `pretraining`.
The tracks are never ranked together (decathlon.report.tracks): leaderboard.md and .tex give the
closed-track tables first, under their own heading, then the open track's, with the reason it
stands apart. Files are written atomically.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from decathlon.report.collection import Collection
from decathlon.files import write_bytes_atomic
from decathlon.data import PAPER_ORDER, get_domain
from decathlon.report.leaderboard import ROW_COLUMNS, SUMMARY_METRICS, Leaderboard, leaderboards
from decathlon.report.tracks import CLOSED_WHY, OPEN_WHY, PAR_UNIT, TRACKS

DECIMALS = {"S": 0, "#par": 2, "gflops_per_image": 3, "train_images_per_s": 0, "device_hours": 4,
            "peak_memory_mib": 0}   # accuracies and their mean: 2
CONSTANT_WITHOUT_SE = ("#par",)   # "± 0.00" left out where the size is the same for every seed
# The cost columns are shown as the mean over seeds only (their s.e. is in scores.csv).
COST_HEADERS = {"gflops_per_image": "GFLOPs/img", "train_images_per_s": "train img/s", "device_hours": "device-h",
                "peak_memory_mib": "peak MiB"}
CSV_COLUMNS = ["data", "preset", "protocol", "track", "backbone", "split", "method", "arch", "input_size", "patch_size",
               "pretraining", "source", "metric", "mean", "se", "n"]
# What each row stands on, shown after its numbers: ROW_COLUMNS' field -> header.
BACKBONE_HEADERS = {"arch": "backbone", "input_size": "input", "pretraining": "pretraining"}
TRACK_WHY = {"closed": CLOSED_WHY, "open": OPEN_WHY}


def format_cell(mean: float, se: float, n, decimals: int) -> str:
    """'61.23 ± 0.45' with n > 1 seeds, '61.23' with one, '' for an empty cell."""
    if pd.isna(mean):
        return ""
    text = f"{mean:.{decimals}f}"
    return f"{text} ± {se:.{decimals}f}" if pd.notna(n) and n > 1 else text


def shown_seeds(metric: str, cell) -> int:
    """The n a cell is shown with: 1 (no ±) for a cost column, and for a #par that is the same
    for every seed (its s.e. rounds to 0: sums of floats may differ in the last bits)."""
    if metric in COST_HEADERS or (metric in CONSTANT_WITHOUT_SE and not round(cell["se"], DECIMALS[metric]) > 0):
        return 1
    return cell["n"]


def display_table(board: Leaderboard) -> pd.DataFrame:
    """One formatted row per method: method, seeds, the ten domains (paper order), mean, S, #par,
    the cost columns and what the row stands on (backbone, input size, pretraining)."""
    headers = {metric: get_domain(metric).short for metric in PAPER_ORDER}
    headers.update({metric: COST_HEADERS.get(metric, metric) for metric in SUMMARY_METRICS})
    rows = []
    for method in board.methods():
        cells = board.cells[board.cells["method"] == method].set_index("metric")
        ours = (cells["source"] == "ours").all()
        seeds = cells["n"].get("mean")
        row = {"method": method, "seeds": "" if pd.isna(seeds) else str(seeds)}
        for metric, header in headers.items():
            if metric in cells.index:
                cell = cells.loc[metric]
                row[header] = format_cell(cell["mean"], cell["se"], shown_seeds(metric, cell), DECIMALS.get(metric, 2))
            else:
                row[header] = "n/a" if metric == "S" and ours else ""
        stands_on = board.row(method)
        row.update({header: stands_on[field] for field, header in BACKBONE_HEADERS.items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "seeds", *headers.values(), *BACKBONE_HEADERS.values()])


def caption(board: Leaderboard) -> str:
    label = board.data_label[0].upper() + board.data_label[1:]
    return (f"{label} data: top-1 accuracy (%) on the {board.split} split, preset {board.preset}, "
            f"protocol {board.protocol}, backbone {board.backbone}; mean ± s.e. over seeds (± only when "
            f"n > 1); ImNet is the backbone's own accuracy; #par in units of the row's own backbone. "
            f"{board.baseline}")


def _markdown_grid(frame: pd.DataFrame) -> str:
    def line(values):
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    text = {"method", *BACKBONE_HEADERS.values()}
    align = ["---" if column in text else "---:" for column in frame.columns]
    return "\n".join([line(frame.columns), line(align).replace(" ", ""), *map(line, frame.itertuples(index=False))])


def by_track(boards: list) -> list:
    """[(track, its boards)] for the tracks that have any, closed first."""
    return [(track, [b for b in boards if b.track == track]) for track in TRACKS
            if any(b.track == track for b in boards)]


def track_heading(track: str, boards: list) -> str:
    """'Closed track (SYNTHETIC data)': a track's heading, with the data kinds of its tables."""
    kinds = " and ".join(sorted({board.data_label for board in boards}))
    return f"{track.capitalize()} track ({kinds} data)"


def leaderboard_markdown(collection: Collection, boards: list) -> str:
    kinds = " and ".join(sorted({board.data_label for board in boards}))
    lines = ["# Visual Decathlon leaderboard" + (f" ({kinds} data)" if kinds else ""), "",
             "Collected by `python -m decathlon collect` from the job records of: "
             + ", ".join(f"`{run}`" for run in collection.run_dirs) + ".", PAR_UNIT, ""]
    if not boards:
        lines += ["No finished jobs yet.", ""]
    for track, mine in by_track(boards):
        lines += [f"## {track_heading(track, mine)}", "", TRACK_WHY[track], ""]
        for board in mine:
            lines += [f"### {board.title}", "", caption(board), ""]
            if board.missing_domains:
                shorts = ", ".join(get_domain(d).short for d in board.missing_domains)
                lines += [f"Missing domains (empty cells, not part of mean or S): {shorts}.", ""]
            lines += [f"Note: {note}." for note in board.notes] + ([""] if board.notes else [])
            lines += [_markdown_grid(display_table(board)), ""]
    lines += ["## Incomplete jobs (not counted)", ""]
    lines += [f"- `{row.path}` ({row.method} on {row.domain}): {row.reason}"
              for row in collection.incomplete.itertuples()] or ["None: every job folder has finished."]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    replacements = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(replacements.get(char, char) for char in text)


def leaderboard_latex(boards: list) -> str:
    """One booktabs table per leaderboard (needs \\usepackage{booktabs})."""
    kinds = " and ".join(sorted({board.data_label for board in boards}))
    parts = ["% Visual Decathlon leaderboard" + (f" ({kinds} data)" if kinds else "")
             + ", written by `python -m decathlon collect`.",
             "% Needs \\usepackage{booktabs}."]
    for track, mine in by_track(boards):
        parts.append(f"% {track_heading(track, mine)}. {TRACK_WHY[track]}")
        for board in mine:
            frame = display_table(board)
            styler = frame.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
            # The backbone columns are text: left-aligned like the method.
            align = "l" + "r" * (len(frame.columns) - 1 - len(BACKBONE_HEADERS)) + "l" * len(BACKBONE_HEADERS)
            parts.append(styler.to_latex(hrules=True, position_float="centering", label=f"tab:{board.slug}",
                                         caption=_latex_escape(f"{board.title}. {caption(board)}"),
                                         column_format=align))
    return "\n".join(parts).replace("±", r"$\pm$") + "\n"


def scores_frame(boards: list) -> pd.DataFrame:
    """All tables' cells, tidy, with the table identity on every row."""
    frames = [board.cells.assign(data=board.data_label, preset=board.preset, protocol=board.protocol,
                                 track=board.track, backbone=board.backbone, split=board.split)
              .merge(_row_table(board), on="method", how="left") for board in boards]
    return pd.concat(frames, ignore_index=True)[CSV_COLUMNS] if frames else pd.DataFrame(columns=CSV_COLUMNS)


def _row_table(board: Leaderboard) -> pd.DataFrame:
    """What each row of a table stands on (ROW_COLUMNS but track, which is the table's)."""
    return pd.DataFrame([{"method": m, **board.row(m)} for m in board.methods()],
                        columns=ROW_COLUMNS).drop(columns="track")


def write_tables(collection: Collection, out_dir) -> list:
    """Write leaderboard.md, leaderboard.tex and scores.csv into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    boards = leaderboards(collection)
    return [write_bytes_atomic(out_dir / "leaderboard.md", leaderboard_markdown(collection, boards)),
            write_bytes_atomic(out_dir / "leaderboard.tex", leaderboard_latex(boards)),
            write_bytes_atomic(out_dir / "scores.csv", scores_frame(boards).to_csv(index=False, float_format="%.6f"))]
