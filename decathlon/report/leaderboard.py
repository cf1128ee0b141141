"""Leaderboards: one table per (data kind, preset, protocol, track, backbone, split) of a Collection.

A table ranks method variants by per-domain top-1 accuracy (%), their mean over
domains, the Decathlon score S and #par, each as mean and standard error over seeds
(s.e. = std / sqrt(n), only when n > 1). Rules, following the papers' tables:
- Tracks (decathlon.report.tracks) are never mixed: closed-track tables (one per backbone
  provenance, as before) and one open-track table per preset and protocol, whose rows
  each name their own backbone and pretraining. A row is one method variant on one
  backbone (its label carries the backbone tag), never an average over backbones.
- ImNet is the pretraining job's accuracy for every method (they share its backbone): the
  pretraining job of the row's own backbone; open-track rows have none (pretrained outside).
- Per seed first, then over seeds: a seed's mean and S use that seed's domains (plus
  ImNet); #par = 1 (the shared backbone) + sum over target domains of the domain's
  stored parameters without classifier (+ once what a multi-domain job shares), in
  units of the row's own backbone without classifier (one ResNet-26 at the job's width for
  the resnet26 rows).
- S: on real test data against the published Finetune test errors (both tracks); on val or
  on synthetic data against THIS run's finetune errors (mean over seeds per domain): the
  preset's own finetune on the default backbone, which an open table borrows from the
  closed track, else the finetune rows of one backbone, named in the caption. Without
  finetune jobs S is n/a.
- On real test data the published rows stand beside ours (source "published"), in the
  closed track only: they are ResNet-26 rows pretrained on the Decathlon's imagenet12.
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
from decathlon.report.collection import BASELINE_METHOD, Collection
from decathlon.data import PAPER_ORDER, SOURCE_DOMAIN, get_domain
from decathlon.report.leaderboard_notes import (COST_METRICS, OPEN_IMNET_NOTE, cost_note, selection_notes,
                                                tuned_layers_notes)
from decathlon.report.tracks import (CLOSED, OPEN, OPEN_BOARD_BACKBONE, PUBLISHED_PRETRAINING, REFERENCE_ARCH,
                                     input_label)
from decathlon.scoring import published_baseline_errors, s_score

SUMMARY_METRICS = ("mean", "S", "#par", *COST_METRICS)
CELL_COLUMNS = ["method", "source", "metric", "mean", "se", "n"]
# What each row of a table stands on (its backbone), beside its cells; see Leaderboard.rows.
ROW_COLUMNS = ["method", "track", "arch", "input_size", "patch_size", "pretraining"]
PUBLISHED_ROW = {"track": CLOSED, "arch": REFERENCE_ARCH, "input_size": input_label(None), "patch_size": None,
                 "pretraining": PUBLISHED_PRETRAINING}


@dataclass(frozen=True)
class Leaderboard:
    """One table. `cells` is tidy: method, source ('ours' or 'published'), metric (a domain
    folder name, 'mean', 'S', '#par' or a COST_METRICS name), mean, se, n (seeds; <NA> for
    published rows). `rows`: per row label (ROW_COLUMNS) its track, backbone arch, input size
    ('native' or 'N px'), patch size and pretraining source line.
    Accuracies and their mean are in percent."""
    synthetic: bool
    preset: str
    protocol: str
    split: str
    backbone: str            # where the shared backbone came from (closed: pretrained here, or imported)
    cells: pd.DataFrame
    baseline: str            # the caption line saying which baseline S used, or why S is n/a
    missing_domains: tuple   # paper-order domains with no result of ours (empty cells)
    notes: tuple             # other caveats worth a line under the table
    track: str = CLOSED
    rows: pd.DataFrame | None = None

    @property
    def data_label(self) -> str:
        return "SYNTHETIC" if self.synthetic else "real"

    @property
    def title(self) -> str:
        return (f"{self.data_label} data · preset {self.preset} · protocol {self.protocol} · split {self.split} · "
                f"{self.track} track")

    @property
    def slug(self) -> str:
        """File-name form of the table's identity (an imported backbone adds its sha256 prefix,
        the open track '-open')."""
        imported = re.search(r"sha256 ([0-9a-f]+)", self.backbone) if self.track == CLOSED else None
        tag = f"-imported-{imported[1]}" if imported else ("-open" if self.track == OPEN else "")
        return f"{'synthetic-' if self.synthetic else ''}{self.preset}-{self.protocol}{tag}-{self.split}"

    def methods(self, source: str | None = None) -> list:
        """Row labels in table order (ours first), optionally of one source only."""
        cells = self.cells if source is None else self.cells[self.cells["source"] == source]
        return list(dict.fromkeys(cells["method"]))

    def value(self, method: str, metric: str, field: str = "mean"):
        """One number of the table (NaN when the cell is empty)."""
        hit = self.cells[(self.cells["method"] == method) & (self.cells["metric"] == metric)]
        return hit[field].iloc[0] if len(hit) else float("nan")

    def row(self, method: str) -> dict:
        """What a row stands on (ROW_COLUMNS but method); empty texts where the table does not say."""
        known = self.rows[self.rows["method"] == method] if self.rows is not None else ()
        if len(known):
            return known.iloc[0].drop("method").to_dict()
        return {"track": self.track, "arch": "", "input_size": "", "patch_size": None, "pretraining": ""}


def leaderboards(collection: Collection) -> list:
    """Every table of the collection (closed track first): split val for protocol train,
    test where labelled."""
    boards = []
    targets = collection.targets()
    targets = targets.assign(table_backbone=targets["backbone"].where(targets["track"] == CLOSED,
                                                                      OPEN_BOARD_BACKBONE))
    keys = ["synthetic", "preset", "protocol", "track", "table_backbone"]
    for (synthetic, preset, protocol, track, backbone), group in targets.groupby(keys, sort=True):
        splits = ["val"] if protocol == "train" and group["val_accuracy"].notna().any() else []
        splits += ["test"] if group["test_accuracy"].notna().any() else []
        closed = targets[(targets["synthetic"] == synthetic) & (targets["preset"] == preset)
                         & (targets["protocol"] == protocol) & (targets["track"] == CLOSED)
                         & (targets["variant"] == BASELINE_METHOD)]
        reference = closed[closed["backbone"] == min(closed["backbone"], default="")] if track == OPEN else None
        for split in splits:
            boards.append(_leaderboard(collection, group, bool(synthetic), preset, protocol, track, backbone,
                                       split, reference))
    return boards


def _source(pretraining: pd.DataFrame, column: str, rows: pd.DataFrame) -> pd.Series:
    """The ImNet accuracies of a variant (its rows): the pretraining jobs of its own backbone
    (none for the open track), made with the most of its overrides and none other (e.g.
    precision=bf16 pretrained in bf16; trunk_bn, which pretraining does not have, the preset's
    own pretraining)."""
    first = rows.iloc[0]
    overrides = first["overrides"]
    fits = pretraining[(pretraining["backbone"] == first["backbone"])
                       & (pretraining["backbone_tag"] == first["backbone_tag"]) & (first["track"] == CLOSED)]
    fits = fits[fits["overrides"].map(lambda own: set(own) <= set(overrides)).astype(bool)]
    if fits.empty:
        return pd.Series(dtype=float)
    most = fits["overrides"].map(len).max()
    return fits.loc[fits["overrides"].map(len) == most, column].dropna()


def _row_frame(scored: pd.DataFrame, variants: list, published: bool) -> pd.DataFrame:
    """Leaderboard.rows: what each variant (its first job; one backbone per variant) stands on."""
    first = scored.drop_duplicates("variant").set_index("variant")
    size = {(v, key): None if pd.isna(first.at[v, key]) else int(first.at[v, key])
            for v in variants for key in ("input_size", "patch_size")}
    rows = [{"method": v, "track": first.at[v, "track"], "arch": first.at[v, "arch"],
             "input_size": input_label(size[v, "input_size"]), "patch_size": size[v, "patch_size"],
             "pretraining": first.at[v, "pretraining"]} for v in variants]
    if published:
        rows += [{"method": f"{name} (published)", **PUBLISHED_ROW} for name in published_results()["method"]]
    return pd.DataFrame(rows, columns=ROW_COLUMNS, dtype=object)   # object: a size stays an int or None


def _leaderboard(collection, group, synthetic, preset, protocol, track, backbone, split, reference) -> Leaderboard:
    column = f"{split}_accuracy"
    pretraining = collection.pretraining()
    pretraining = pretraining[(pretraining["preset"] == preset) & (pretraining["synthetic"] == synthetic)]
    scored = group[group[column].notna()]
    published = split == "test" and not synthetic
    variants = sorted(scored["variant"].unique(), key=lambda v: (v != BASELINE_METHOD, v))
    sources = {v: _source(pretraining, column, scored[scored["variant"] == v]) for v in variants}
    reference = None if reference is None else reference[reference[column].notna()]
    errors, baseline = _baseline_errors(scored, column, pretraining, published, split, reference)
    cells, notes = [], []
    for variant in variants:
        cells += _variant_cells(variant, scored[scored["variant"] == variant], column, sources[variant], errors,
                                notes)
    if published and track == CLOSED:
        cells += _published_cells()
    if track == OPEN:
        notes.append(OPEN_IMNET_NOTE)
    elif all(source.empty for source in sources.values()):
        notes.append(f"no finished pretraining job of preset {preset} scored on {split}: ImNet is empty "
                     "and not part of the mean or S")
    notes += tuned_layers_notes(collection.layers, synthetic, preset, protocol, track, backbone, variants)
    notes += selection_notes(scored)
    notes += cost_note(scored, cells)
    own_protocol = set(group["preset_protocol"].dropna()) - {protocol}
    if own_protocol:
        notes.append(f"preset {preset} reproduces protocol {', '.join(sorted(own_protocol))}; these jobs ran "
                     f"protocol {protocol} (--protocol), a deliberate difference")
    have = set(scored["domain"]) | ({SOURCE_DOMAIN} if any(len(s) for s in sources.values()) else set())
    table = pd.DataFrame(cells, columns=CELL_COLUMNS).astype({"n": "Int64"})
    return Leaderboard(synthetic, preset, protocol, split, backbone, table, baseline,
                       tuple(d for d in PAPER_ORDER if d not in have), tuple(notes), track,
                       _row_frame(scored, variants, published and track == CLOSED))


def _baseline_rows(scored: pd.DataFrame, reference) -> tuple:
    """(the finetune rows S is measured against, the words naming them): the preset's own
    finetune on the default backbone, else the closed track's (for an open table), else every
    finetune row of the first backbone tag (one backbone, never an average over several)."""
    finetune = scored[scored["method"] == BASELINE_METHOD]
    own = finetune[finetune["variant"] == BASELINE_METHOD]
    if not own.empty:
        return own, ""
    if reference is not None and not reference.empty:
        return reference, f" (the closed track's, on {REFERENCE_ARCH})"
    if finetune.empty:
        return finetune, ""
    tag = min(finetune["backbone_tag"])
    return finetune[finetune["backbone_tag"] == tag], (f" (on {tag})" if tag else "")


def _baseline_errors(scored, column, pretraining, published, split, reference) -> tuple:
    """({domain: baseline error} or None, the caption line saying which)."""
    if published:
        return published_baseline_errors(), ("S baseline: the published Finetune test errors "
                                              "(ImNet scored with the pretraining job's accuracy).")
    finetune, which = _baseline_rows(scored, reference)
    if finetune.empty:
        return None, (f"S: n/a, this run has no {BASELINE_METHOD} jobs scored on {split}, and on val or "
                      "synthetic data S needs the run's own finetune errors as its baseline.")
    errors = (1.0 - finetune.groupby("domain")[column].mean()).to_dict()
    source = _source(pretraining, column, finetune)   # ImNet as the baseline rows' own pretraining
    if len(source):
        errors[SOURCE_DOMAIN] = 1.0 - float(source.mean())
    return errors, (f"S baseline: this run's own {BASELINE_METHOD}{which} {split} errors (mean over seeds per "
                    "domain; ImNet: the pretraining job), NOT the published test baseline.")


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
