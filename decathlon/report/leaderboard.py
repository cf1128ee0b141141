"""Leaderboards: one table per (data kind, preset, protocol, split) of a Collection.

A table ranks method variants by per-domain top-1 accuracy (%), their mean over
domains, the Decathlon score S and #par, each as mean and standard error over seeds
(s.e. = std / sqrt(n), only when n > 1). Rules, following the papers' tables:
- ImNet is the pretraining job's accuracy for every method (they share its backbone).
- Per seed first, then over seeds: a seed's mean and S use that seed's domains (plus
  ImNet); #par = 1 (the shared backbone) + sum over target domains of the domain's
  stored parameters without classifier (+ once what a multi-domain job shares), in
  units of one ResNet-26 at the job's width.
- S: on real test data against the published Finetune test errors; on val or on
  synthetic data against THIS run's finetune errors (mean over seeds per domain), since
  the published errors are of another split or data. Without finetune jobs S is n/a.
- On real test data the published rows stand beside ours (source "published").
- A method that reports which layers it tuned (TAPS) gets a note: the number per domain.
- Cost (final.json's, decathlon.engine.cost), per seed over the table's domains, then mean
  over seeds: GFLOPs per image and training images/s their mean over domains, device-hours
  their sum (a joint job counted once), peak memory the largest; empty unless every job of
  the variant recorded it (older records have none).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from baselines import published_results
from decathlon.report.collection import BASELINE_METHOD, COST_COLUMNS, Collection
from decathlon.data import PAPER_ORDER, SOURCE_DOMAIN, get_domain
from decathlon.scoring import published_baseline_errors, s_score

COST_METRICS = tuple(COST_COLUMNS)   # gflops_per_image, train_images_per_s, device_hours, peak_memory_mib
SUMMARY_METRICS = ("mean", "S", "#par", *COST_METRICS)
CELL_COLUMNS = ["method", "source", "metric", "mean", "se", "n"]


@dataclass(frozen=True)
class Leaderboard:
    """One table. `cells` is tidy: method, source ('ours' or 'published'), metric (a domain
    folder name, 'mean', 'S', '#par' or a COST_METRICS name), mean, se, n (seeds; <NA> for
    published rows).
    Accuracies and their mean are in percent."""
    synthetic: bool
    preset: str
    protocol: str
    split: str
    backbone: str            # where the shared backbone came from (pretrained here, or imported)
    cells: pd.DataFrame
    baseline: str            # the caption line saying which baseline S used, or why S is n/a
    missing_domains: tuple   # paper-order domains with no result of ours (empty cells)
    notes: tuple             # other caveats worth a line under the table

    @property
    def data_label(self) -> str:
        return "SYNTHETIC" if self.synthetic else "real"

    @property
    def title(self) -> str:
        return f"{self.data_label} data · preset {self.preset} · protocol {self.protocol} · split {self.split}"

    @property
    def slug(self) -> str:
        """File-name form of the table's identity (an imported backbone adds its sha256 prefix)."""
        imported = re.search(r"sha256 ([0-9a-f]+)", self.backbone)
        tag = f"-imported-{imported[1]}" if imported else ""
        return f"{'synthetic-' if self.synthetic else ''}{self.preset}-{self.protocol}{tag}-{self.split}"

    def methods(self, source: str | None = None) -> list:
        """Row labels in table order (ours first), optionally of one source only."""
        cells = self.cells if source is None else self.cells[self.cells["source"] == source]
        return list(dict.fromkeys(cells["method"]))

    def value(self, method: str, metric: str, field: str = "mean"):
        """One number of the table (NaN when the cell is empty)."""
        hit = self.cells[(self.cells["method"] == method) & (self.cells["metric"] == metric)]
        return hit[field].iloc[0] if len(hit) else float("nan")


def leaderboards(collection: Collection) -> list:
    """Every table of the collection: split val for protocol train, test where labelled."""
    boards = []
    targets = collection.targets()
    keys = ["synthetic", "preset", "protocol", "backbone"]
    for (synthetic, preset, protocol, backbone), group in targets.groupby(keys, sort=True):
        splits = ["val"] if protocol == "train" and group["val_accuracy"].notna().any() else []
        splits += ["test"] if group["test_accuracy"].notna().any() else []
        for split in splits:
            boards.append(_leaderboard(collection, group, bool(synthetic), preset, protocol, backbone, split))
    return boards


def _source(pretraining: pd.DataFrame, column: str, overrides: tuple) -> pd.Series:
    """The ImNet accuracies of a variant: the pretraining jobs made with the most of its
    overrides and none other (e.g. precision=bf16 pretrained in bf16; trunk_bn, which
    pretraining does not have, the preset's own pretraining)."""
    fits = pretraining[pretraining["overrides"].map(lambda own: set(own) <= set(overrides)).astype(bool)]
    if fits.empty:
        return pd.Series(dtype=float)
    most = fits["overrides"].map(len).max()
    return fits.loc[fits["overrides"].map(len) == most, column].dropna()


def _leaderboard(collection, group, synthetic, preset, protocol, backbone, split) -> Leaderboard:
    column = f"{split}_accuracy"
    pretraining = collection.pretraining()
    pretraining = pretraining[(pretraining["preset"] == preset) & (pretraining["synthetic"] == synthetic)
                              & (pretraining["backbone"] == backbone)]
    scored = group[group[column].notna()]
    published = split == "test" and not synthetic
    variants = sorted(scored["variant"].unique(), key=lambda v: (v != BASELINE_METHOD, v))
    sources = {v: _source(pretraining, column, scored.loc[scored["variant"] == v, "overrides"].iloc[0])
               for v in variants}
    errors, baseline = _baseline_errors(scored, column, sources, published, split)
    cells, notes = [], []
    for variant in variants:
        cells += _variant_cells(variant, scored[scored["variant"] == variant], column, sources[variant], errors,
                                notes)
    if published:
        cells += _published_cells()
    if all(source.empty for source in sources.values()):
        notes.append(f"no finished pretraining job of preset {preset} scored on {split}: ImNet is empty "
                     "and not part of the mean or S")
    notes += _tuned_layers_notes(collection.layers, synthetic, preset, protocol, backbone, variants)
    notes += _selection_notes(scored)
    notes += _cost_note(scored, cells)
    own_protocol = set(group["preset_protocol"].dropna()) - {protocol}
    if own_protocol:
        notes.append(f"preset {preset} reproduces protocol {', '.join(sorted(own_protocol))}; these jobs ran "
                     f"protocol {protocol} (--protocol), a deliberate difference")
    have = set(scored["domain"]) | ({SOURCE_DOMAIN} if any(len(s) for s in sources.values()) else set())
    table = pd.DataFrame(cells, columns=CELL_COLUMNS).astype({"n": "Int64"})
    return Leaderboard(synthetic, preset, protocol, split, backbone, table, baseline,
                       tuple(d for d in PAPER_ORDER if d not in have), tuple(notes))


def _selection_notes(scored: pd.DataFrame) -> list:
    """How the rows a sweep chose were chosen (decathlon.benchmark.selection)."""
    sweeps = sorted(set(scored["selection"].dropna()) - {""})
    return [f"rows 'selected on val over N trials': per domain, the settings of sweep {sweep} with the best mean val "
            "accuracy over seeds (protocol train) among its N trials, then run as these jobs; kept apart from "
            "the preset's own rows" for sweep in sweeps]


def _tuned_layers_notes(layers: pd.DataFrame, synthetic, preset, protocol, backbone, variants) -> list:
    """'taps: layers tuned per domain (of 25; mean over seeds): Airc 3, DTD 7' per variant
    whose jobs report their layer gates."""
    mine = layers[(layers["synthetic"] == synthetic) & (layers["preset"] == preset)
                  & (layers["protocol"] == protocol) & (layers["backbone"] == backbone)]
    notes = []
    for variant in variants:
        rows = mine[mine["variant"] == variant]
        if rows.empty:
            continue
        tuned = rows.groupby(["domain", "seed"])["tuned"].sum().groupby("domain").mean()
        counts = ", ".join(f"{get_domain(d).short} {tuned[d]:g}" for d in PAPER_ORDER if d in tuned.index)
        notes.append(f"{variant}: layers tuned per domain (of {rows['layer'].max()}; mean over seeds): {counts}")
    return notes


def _baseline_errors(scored, column, sources: dict, published, split) -> tuple:
    """({domain: baseline error} or None, the caption line saying which)."""
    if published:
        return published_baseline_errors(), ("S baseline: the published Finetune test errors "
                                              "(ImNet scored with the pretraining job's accuracy).")
    finetune = scored[scored["method"] == BASELINE_METHOD]
    if (finetune["variant"] == BASELINE_METHOD).any():   # the preset's own, not a variant with overrides
        finetune = finetune[finetune["variant"] == BASELINE_METHOD]
    if finetune.empty:
        return None, (f"S: n/a, this run has no {BASELINE_METHOD} jobs scored on {split}, and on val or "
                      "synthetic data S needs the run's own finetune errors as its baseline.")
    errors = (1.0 - finetune.groupby("domain")[column].mean()).to_dict()
    source = sources[finetune["variant"].iloc[0]]   # ImNet as the baseline rows' own pretraining
    if len(source):
        errors[SOURCE_DOMAIN] = 1.0 - float(source.mean())
    return errors, (f"S baseline: this run's own {BASELINE_METHOD} {split} errors (mean over seeds per domain; "
                    "ImNet: the pretraining job), NOT the published test baseline.")


def _cell(method: str, metric: str, values, scale: float = 1.0) -> dict:
    values = np.asarray(values, np.float64) * scale
    n = len(values)
    se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"method": method, "source": "ours", "metric": metric, "mean": float(values.mean()), "se": se, "n": n}


def _variant_cells(variant: str, jobs: pd.DataFrame, column: str, source: pd.Series, errors, notes: list) -> list:
    cells = [_cell(variant, SOURCE_DOMAIN, source, 100.0)] if len(source) else []
    cells += [_cell(variant, domain, jobs.loc[jobs["domain"] == domain, column], 100.0)
              for domain in PAPER_ORDER if domain in set(jobs["domain"])]
    per_seed = {seed: dict(zip(seed_jobs["domain"], seed_jobs[column])) for seed, seed_jobs in jobs.groupby("seed")}
    if len({frozenset(acc) for acc in per_seed.values()}) > 1:
        counts = ", ".join(f"seed {seed}: {len(acc)}" for seed, acc in per_seed.items())
        notes.append(f"{variant}: seeds cover different domains ({counts}); each seed's mean, S and #par "
                     "are over its own domains")
    if len(source):
        per_seed = {seed: {**acc, SOURCE_DOMAIN: float(source.mean())} for seed, acc in per_seed.items()}
    cells.append(_cell(variant, "mean", [np.mean(list(acc.values())) for acc in per_seed.values()], 100.0))
    if errors is not None:
        unscored = [get_domain(d).short for d in PAPER_ORDER if d in set(jobs["domain"]) and d not in errors]
        if unscored:
            notes.append(f"{variant}: S leaves out {', '.join(unscored)} (no {BASELINE_METHOD} baseline there)")
        if len(unscored) < jobs["domain"].nunique():
            cells.append(_cell(variant, "S", [s_score({d: a for d, a in acc.items() if d in errors},
                                                      baseline_errors=errors).total
                                              for acc in per_seed.values()]))
    own = (jobs["stored_total"] - jobs["stored_classifier"]) / jobs["reference_parameters"]
    # What a multi-domain job shares (SpotTune's joint policy trunk) is counted once per job.
    shared = (jobs.drop_duplicates("path")["stored_shared"].fillna(0)
              / jobs.drop_duplicates("path")["reference_parameters"])
    if own.notna().all():
        per_seed = own.groupby(jobs["seed"]).sum().add(shared.groupby(jobs.drop_duplicates("path")["seed"]).sum(),
                                                       fill_value=0)
        cells.append(_cell(variant, "#par", 1.0 + per_seed))
    return cells + _cost_cells(variant, jobs)


def _cost_cells(variant: str, jobs: pd.DataFrame) -> list:
    """The cost cells of a variant (see the module docstring); none for a metric some job lacks."""
    once = jobs.drop_duplicates("path")   # a joint job's time and memory are on each of its rows
    cells = []
    for metric, rows, per_seed in (("gflops_per_image", jobs, "mean"), ("train_images_per_s", once, "mean"),
                                   ("device_hours", once, "sum"), ("peak_memory_mib", once, "max")):
        if rows[metric].notna().all():
            cells.append(_cell(variant, metric, rows[metric].groupby(rows["seed"]).agg(per_seed)))
    return cells


def _cost_note(scored: pd.DataFrame, cells: list) -> list:
    """What the cost columns are, under a table that has any."""
    if not any(cell["metric"] in COST_METRICS for cell in cells):
        return []
    kinds = ", ".join(sorted(set(scored["peak_memory_kind"].dropna())))
    return ["cost per method over the table's domains, per seed then mean over seeds: GFLOPs/img and train img/s "
            "the mean over domains (FLOPs by torch's counter, a multiply-add = 2, SpotTune routed under its "
            "reported policy), device-h the sum over the jobs (training + evaluation x processes), peak MiB the "
            f"largest of the jobs ({kinds}); empty where a job recorded no cost"]


def _published_cells() -> list:
    """The published rows (the papers' tables), one value per cell, no seeds."""
    cells = []
    for _, row in published_results().iterrows():
        method = f"{row['method']} (published)"
        values = {d: float(row[d]) for d in PAPER_ORDER}
        values.update({"mean": float(np.mean(list(values.values()))), "S": float(row["S"]),
                       "#par": float(row["params_x_resnet26"])})
        cells += [{"method": method, "source": "published", "metric": metric, "mean": value,
                   "se": float("nan"), "n": None} for metric, value in values.items()]
    return cells
