"""The leaderboard page: <out>/index.html, one self-contained static file.

Built from the same Leaderboard objects as leaderboard.md (never from the written
markdown): the closed track's tables, then the open track's under their own heading that
says why they stand apart (decathlon.report.tracks); per table (data kind, preset, protocol,
track, backbone, split) a sortable table of the method variants with the cost columns and
what each row stands on (backbone, input size, pretraining), the reported-vs-reproduced
table, and the table's plots embedded as data: URIs (base64 PNG); then the run's other
figures and its incomplete jobs. CSS and JavaScript are inline (page_template.html), nothing is fetched.
Every text goes through Jinja2's autoescaping. On SYNTHETIC data every heading says so.

Sorting: click a column header (numbers numerically, `61.2 ± 0.4` by its mean, empty cells
last), or name it in the URL: `index.html#sort=<table id>:<column>[:asc|:desc]`, several
joined by commas; the table ids and column keys are in each table's `id` and `data-key`.

Cost columns are shown when the table data has them, each either as its own metric row of
a method (metric `gflops_per_image`, with mean/se/n) or as a column of the cells on the
method's `mean` row; otherwise the cell is empty. A method's `note` (a column of the cells,
e.g. a sweep's selection) is shown in a note column when any row has one.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2
import pandas as pd

from decathlon.data import PAPER_ORDER, get_domain
from decathlon.files import write_bytes_atomic
from decathlon.report.collection import Collection
from decathlon.report.leaderboard import COST_METRICS, SUMMARY_METRICS, Leaderboard, leaderboards
from decathlon.report.reproduction import comparable, reproduction_frame
from decathlon.report.tables import (BACKBONE_HEADERS, DECIMALS, TRACK_WHY, by_track, caption, format_cell,
                                     shown_seeds, track_heading)
from decathlon.report.tracks import PAR_UNIT

PAGE_NAME = "index.html"
TEMPLATE = "page_template.html"
# scores.csv name, header, number format (of the mean; a metric row with seeds adds ± s.e.)
COST_COLUMNS = (("gflops_per_image", "GFLOPs/img", 3), ("train_images_per_s", "train img/s", 1),
                ("device_hours", "device-h", 4), ("peak_memory_mib", "peak MiB", 0))
NOTE_COLUMN = "note"
SCORE_METRICS = tuple(m for m in SUMMARY_METRICS if m not in COST_METRICS)   # mean, S, #par


@dataclass(frozen=True)
class Column:
    key: str        # the name used in the URL's #sort=<table>:<key>
    header: str
    numeric: bool


@dataclass(frozen=True)
class Cell:
    text: str
    sort: float | None = None   # the number a numeric column sorts by (None: empty, sorted last)


@dataclass(frozen=True)
class PageTable:
    id: str
    columns: list
    rows: list      # of lists of Cell, one per column


def _number_cell(mean, se, n, decimals: int) -> Cell:
    if pd.isna(mean):
        return Cell("")
    return Cell(format_cell(mean, se, n, decimals), float(mean))


def _cost_cell(cells: pd.DataFrame, key: str, decimals: int) -> Cell:
    """A method's cost, as the mean over seeds (as leaderboard.md shows it): its own metric row,
    else the column on its `mean` row, else empty."""
    if key in cells.index:
        row = cells.loc[key]
        return _number_cell(row["mean"], row["se"], 1, decimals)
    if key in cells.columns and "mean" in cells.index:
        return _number_cell(cells.loc["mean", key], float("nan"), 1, decimals)
    return Cell("")


def _note(cells: pd.DataFrame) -> str:
    if NOTE_COLUMN not in cells.columns:
        return ""
    notes = [str(note) for note in cells[NOTE_COLUMN] if pd.notna(note) and str(note)]
    return "; ".join(dict.fromkeys(notes))


def leaderboard_table(board: Leaderboard) -> PageTable:
    """The board's rows as the leaderboard shows them, plus the cost columns, what each row
    stands on (backbone, input size, pretraining) and notes."""
    columns = [Column("method", "method", False), Column("seeds", "seeds", True)]
    columns += [Column(domain, get_domain(domain).short, True) for domain in PAPER_ORDER]
    columns += [Column(metric.lstrip("#"), metric, True) for metric in SCORE_METRICS]
    columns += [Column(key, header, True) for key, header, _ in COST_COLUMNS]
    columns += [Column(field, header, False) for field, header in BACKBONE_HEADERS.items()]
    rows = []
    for method in board.methods():
        cells = board.cells[board.cells["method"] == method].set_index("metric")
        ours = (cells["source"] == "ours").all()
        seeds = cells["n"].get("mean")
        row = [Cell(method), Cell("") if pd.isna(seeds) else Cell(str(seeds), float(seeds))]
        for metric in (*PAPER_ORDER, *SCORE_METRICS):
            if metric in cells.index:
                cell = cells.loc[metric]
                row.append(_number_cell(cell["mean"], cell["se"], shown_seeds(metric, cell), DECIMALS.get(metric, 2)))
            else:
                row.append(Cell("n/a" if metric == "S" and ours else ""))
        row += [_cost_cell(cells, key, decimals) for key, _, decimals in COST_COLUMNS]
        stands_on = board.row(method)
        row += [Cell(str(stands_on[field])) for field in BACKBONE_HEADERS]
        rows.append((row, _note(cells)))
    if any(note for _, note in rows):
        columns.append(Column(NOTE_COLUMN, NOTE_COLUMN, False))
        rows = [(row + [Cell(note)], note) for row, note in rows]
    return PageTable(f"t-{board.slug}", columns, [row for row, _ in rows])


def reproduction_table(board: Leaderboard) -> PageTable:
    """Reported vs reproduced, one row per (variant, domain or mean or S)."""
    columns = [Column("method", "method", False), Column("published_method", "published row", False),
               Column("metric", "domain", False), Column("published", "published", True),
               Column("reproduced", "this run", True), Column("difference", "difference", True)]
    rows = []
    for item in reproduction_frame(board).itertuples():
        decimals = DECIMALS.get(item.metric, 2)
        label = get_domain(item.metric).short if item.metric in PAPER_ORDER else item.metric
        rows.append([Cell(item.method), Cell(item.published_method), Cell(label),
                     _number_cell(item.published, float("nan"), 1, decimals),
                     _number_cell(item.reproduced, item.se, item.n, decimals),
                     Cell(f"{item.difference:+.{decimals}f}", item.difference)])
    return PageTable(f"r-{board.slug}", columns, rows)


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")


def _belongs_to(png: Path, board: Leaderboard) -> bool:
    """Whether a plot is of this table (accuracy_<slug>.png, policy_<slug>_<variant>.png, ...)."""
    return png.stem.endswith(f"_{board.slug}") or f"_{board.slug}_" in png.stem


def _figure(png: Path) -> dict:
    return {"name": png.name, "src": _data_uri(png)}


def data_kinds(collection: Collection, boards: list) -> str:
    """'SYNTHETIC', 'real' or 'SYNTHETIC and real': what the page's own headings say."""
    flags = {board.synthetic for board in boards} or set(collection.jobs["synthetic"].dropna().astype(bool))
    return " and ".join(label for flag, label in ((True, "SYNTHETIC"), (False, "real")) if flag in flags)


def render_page(collection: Collection, boards: list, plots: list) -> str:
    """The page's HTML."""
    plots = [Path(p) for p in plots]
    sections = []
    for board in [board for _, mine in by_track(boards) for board in mine]:
        meaningful, comparison = comparable(board)
        published = set(board.methods("published"))
        sections.append({
            "board": board, "caption": caption(board), "table": leaderboard_table(board),
            "row_classes": ["published" if method in published else "" for method in board.methods()],
            "missing": ", ".join(get_domain(d).short for d in board.missing_domains),
            "reproduction": reproduction_table(board), "comparison": comparison, "meaningful": meaningful,
            "figures": [_figure(p) for p in plots if _belongs_to(p, board)]})
    tracks = [{"id": f"track-{track}", "heading": track_heading(track, mine), "why": TRACK_WHY[track],
               "sections": [section for section in sections if section["board"].track == track]}
              for track, mine in by_track(boards)]
    others = [_figure(p) for p in plots if not any(_belongs_to(p, board) for board in boards)]
    template = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(template).render(
        kinds=data_kinds(collection, boards), cost_keys=[key for key, _, _ in COST_COLUMNS], run_dirs=[str(run) for run in collection.run_dirs],
        tracks=tracks, par_unit=PAR_UNIT, others=others, incomplete=list(collection.incomplete.itertuples()))


def write_page(collection: Collection, out_dir, plots: list) -> Path:
    """Write <out_dir>/index.html (atomically) from the collection and its written plots."""
    boards = leaderboards(collection)
    return write_bytes_atomic(Path(out_dir) / PAGE_NAME, render_page(collection, boards, plots))
