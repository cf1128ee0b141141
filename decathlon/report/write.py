"""Everything a run produces, from its job records alone: tables, plots, the leaderboard page
(index.html), submission files."""
from __future__ import annotations

from pathlib import Path

from decathlon.report.collection import collect
from decathlon.report.page import write_page
from decathlon.report.plots import write_plots
from decathlon.report.submissions import write_submissions
from decathlon.report.tables import write_tables


def report(run_dirs: list, out: Path) -> None:
    """Collect `run_dirs`, write tables, plots, the page and submissions into `out`, print a summary."""
    collection = collect(run_dirs)
    tables = write_tables(collection, out)
    plots = write_plots(collection, out)
    page = write_page(collection, out, plots)
    submissions = write_submissions(collection, out)
    print(tables[0].read_text())
    print(f"{len(collection.jobs)} finished job(s), {len(collection.incomplete)} incomplete; wrote "
          f"{', '.join(p.name for p in tables)}, {page.name} and {len(plots)} plot(s) to {out}")
    for row in submissions.itertuples():
        print(f"  {row.file}: {row.entries:,} entries, {submission_state(row)}")


def submission_state(row) -> str:
    """What one written submission is: complete, partial (naming the domains it lacks, if
    any: a synthetic one is partial with every domain), or not written and why."""
    if row.problem:
        return f"NOT WRITTEN: {row.problem}"
    if row.complete:
        return "complete, ready to upload"
    lacking = f"; no predictions for {row.missing}" if row.missing else ""
    return f"partial ({row.domains} domain(s), {row.data} data{lacking})"
