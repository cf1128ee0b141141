"""Results collected from job records alone: leaderboards, tables, plots, submission files.

`collection` reads the job folders (never the training code), `leaderboard` and `tables`
make the tables, `plots` the figures, `page` the self-contained leaderboard page (index.html;
`reproduction` its reported-vs-reproduced tables, `browser` renders it in headless Chromium),
`submissions` the server's files; `report` writes them all for one run. `tracks` reads each
job's track, backbone and pretraining: closed- and open-track rows are never ranked together."""
from decathlon.report.browser import BrowserError, dump_dom, find_chromium, require_chromium, screenshot
from decathlon.report.collection import CollectError, Collection, collect
from decathlon.report.leaderboard import Leaderboard, leaderboards
from decathlon.report.page import PAGE_NAME, render_page, write_page
from decathlon.report.plots import write_plots
from decathlon.report.predictions import PredictionsError, read_predictions
from decathlon.report.reproduction import reproduction_frame
from decathlon.report.submissions import write_submissions
from decathlon.report.tracks import CLOSED_WHY, OPEN_WHY, TrackError, job_backbone
from decathlon.report.tables import leaderboard_latex, leaderboard_markdown, scores_frame, write_tables
from decathlon.report.write import report

__all__ = ["BrowserError", "CLOSED_WHY", "CollectError", "Collection", "Leaderboard", "PAGE_NAME", "PredictionsError", "collect",
           "dump_dom", "find_chromium", "job_backbone", "leaderboard_latex", "leaderboard_markdown", "leaderboards", "OPEN_WHY",
           "read_predictions", "render_page", "report", "require_chromium", "reproduction_frame", "scores_frame", "screenshot",
           "TrackError", "write_page", "write_plots", "write_submissions", "write_tables"]
