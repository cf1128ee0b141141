"""Results collected from job records alone: leaderboards, tables, plots, submission files."""
