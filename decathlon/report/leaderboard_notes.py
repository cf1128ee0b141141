"""The notes under a leaderboard: how a sweep chose its rows, which layers a method tuned,
what the cost columns are, and why an open-track table has no ImNet column."""
from __future__ import annotations

import pandas as pd

from decathlon.data import PAPER_ORDER, get_domain
from decathlon.report.collection import COST_COLUMNS
from decathlon.report.tracks import OPEN

COST_METRICS = tuple(COST_COLUMNS)   # gflops_per_image, train_images_per_s, device_hours, peak_memory_mib
OPEN_IMNET_NOTE = ("open track: ImNet is empty, these backbones were pretrained outside the suite (no imagenet12 "
                   "job of theirs), so it is not part of the mean or S")


def selection_notes(scored: pd.DataFrame) -> list:
    """How the rows a sweep chose were chosen (decathlon.benchmark.selection)."""
    sweeps = sorted(set(scored["selection"].dropna()) - {""})
    return [f"rows 'selected on val over N trials': per domain, the settings of sweep {sweep} with the best mean val "
            "accuracy over seeds (protocol train) among its N trials, then run as these jobs; kept apart from "
            "the preset's own rows" for sweep in sweeps]


def tuned_layers_notes(layers: pd.DataFrame, synthetic, preset, protocol, track, backbone, variants) -> list:
    """'taps: layers tuned per domain (of 25; mean over seeds): Airc 3, DTD 7' per variant
    whose jobs report their layer gates (an open table's rows each have their own backbone)."""
    mine = layers[(layers["synthetic"] == synthetic) & (layers["preset"] == preset)
                  & (layers["protocol"] == protocol) & (layers["track"] == track)
                  & ((layers["backbone"] == backbone) | (track == OPEN))]
    notes = []
    for variant in variants:
        rows = mine[mine["variant"] == variant]
        if rows.empty:
            continue
        tuned = rows.groupby(["domain", "seed"])["tuned"].sum().groupby("domain").mean()
        counts = ", ".join(f"{get_domain(d).short} {tuned[d]:g}" for d in PAPER_ORDER if d in tuned.index)
        notes.append(f"{variant}: layers tuned per domain (of {rows['layer'].max()}; mean over seeds): {counts}")
    return notes


def cost_note(scored: pd.DataFrame, cells: list) -> list:
    """What the cost columns are, under a table that has any."""
    if not any(cell["metric"] in COST_METRICS for cell in cells):
        return []
    kinds = ", ".join(sorted(set(scored["peak_memory_kind"].dropna())))
    return ["cost per method over the table's domains, per seed then mean over seeds: GFLOPs/img and train img/s "
            "the mean over domains (FLOPs by torch's counter, a multiply-add = 2, SpotTune routed under its "
            "reported policy), device-h the sum over the jobs (training + evaluation x processes), peak MiB the "
            f"largest of the jobs ({kinds}); empty where a job recorded no cost"]
