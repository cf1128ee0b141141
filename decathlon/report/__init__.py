"""Results collected from job records alone: leaderboards, tables, plots, submission files.

`collection` reads the job folders (never the training code), `leaderboard` and `tables`
make the tables, `plots` the figures, `submissions` the server's files; `report` writes
them all for one run."""
from decathlon.report.collection import CollectError, Collection, collect
from decathlon.report.leaderboard import Leaderboard, leaderboards
from decathlon.report.plots import write_plots
from decathlon.report.predictions import PredictionsError, read_predictions
from decathlon.report.submissions import write_submissions
from decathlon.report.tables import leaderboard_latex, leaderboard_markdown, scores_frame, write_tables
from decathlon.report.write import report

__all__ = ["CollectError", "Collection", "Leaderboard", "PredictionsError", "collect", "leaderboard_latex",
           "leaderboard_markdown", "leaderboards", "read_predictions", "report", "scores_frame", "write_plots",
           "write_submissions", "write_tables"]
