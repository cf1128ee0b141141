"""Reported vs reproduced: the published test numbers beside a leaderboard's own, per domain.

A row of ours is compared with the published row of the same method (`PUBLISHED_ROWS`:
our method name -> the method's row in baselines/published_test.csv); every variant of a
method (SpotTune's `eval argmax` and `eval sample`, overridden hyperparameters) is compared
with that one row. Methods without a published row (bn_adapt, spottune_global, ...) have
no comparison. The difference is ours minus published, in accuracy points (S points for S).
The mean over domains and S are compared only where ours covers all ten domains (the
published ones are over ten).
Only real test data makes the comparison meaningful: `comparable` says so, and why not. Only
rows on the published rows' backbone (closed track, resnet26 on native input) are compared: an
open-track row or another backbone has no published counterpart.
"""
from __future__ import annotations

import pandas as pd

from baselines import published_results
from decathlon.data import PAPER_ORDER
from decathlon.report.leaderboard import Leaderboard
from decathlon.report.tracks import OPEN, on_reference_backbone

PUBLISHED_ROWS = {
    "finetune": "Finetune",
    "scratch": "Scratch",
    "feature_extractor": "Feature extractor",
    "series_adapters": "Res. adapt. (series, 2017)",
    "parallel_adapters": "Parallel res. adapt. (2018)",
    "spottune": "SpotTune (2019)",
}
OVER_ALL_DOMAINS = ("mean", "S")
COMPARED_METRICS = (*PAPER_ORDER, *OVER_ALL_DOMAINS)
REPRODUCTION_COLUMNS = ["method", "published_method", "metric", "published", "reproduced", "se", "n", "difference"]


def base_method(variant: str) -> str:
    """'spottune (eval argmax; precision=bf16)' -> 'spottune' (see collection.variant_name)."""
    return variant.split(" (", 1)[0]


def comparable(board: Leaderboard) -> tuple:
    """(whether ours and the published numbers measure the same thing, the sentence saying so)."""
    if board.track == OPEN:
        return False, ("Open track: the published rows are closed track (ResNet-26 pretrained on the Decathlon's "
                       "imagenet12), so no row of this table is compared with them.")
    if board.synthetic:
        return False, ("SYNTHETIC data: the published numbers are of the real Decathlon's test split, so this "
                       "comparison is NOT meaningful; it is shown only as the structure a real run fills in.")
    if board.split != "test":
        return False, (f"Split {board.split}: the published numbers are of the test split, so the difference "
                       "is not a reproduction gap.")
    return True, "Real test data: the difference is ours minus published (accuracy points; S points for S)."


def reproduction_frame(board: Leaderboard) -> pd.DataFrame:
    """One row per (variant of ours with a published row, metric it has): the published value,
    ours (mean, se, n over seeds) and ours minus published."""
    published = published_results().set_index("method")
    rows = []
    for variant in board.methods("ours"):
        name = PUBLISHED_ROWS.get(base_method(variant))
        if not on_reference_backbone(board.row(variant)):
            continue
        if name is None or name not in published.index:
            continue
        row = published.loc[name]
        paper = {domain: float(row[domain]) for domain in PAPER_ORDER}
        paper.update({"mean": sum(paper.values()) / len(paper), "S": float(row["S"])})
        ours = board.cells[(board.cells["method"] == variant) & (board.cells["source"] == "ours")].set_index("metric")
        whole = all(domain in ours.index for domain in PAPER_ORDER)
        for metric in COMPARED_METRICS:
            if metric not in ours.index or (metric in OVER_ALL_DOMAINS and not whole):
                continue
            cell = ours.loc[metric]
            rows.append({"method": variant, "published_method": name, "metric": metric,
                         "published": paper[metric], "reproduced": float(cell["mean"]), "se": float(cell["se"]),
                         "n": cell["n"], "difference": float(cell["mean"]) - paper[metric]})
    return pd.DataFrame(rows, columns=REPRODUCTION_COLUMNS)
