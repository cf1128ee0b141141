"""Read the job folders of benchmark runs into tidy tables (DomainBed's collect_results).

Training and collecting are separate: this module reads only what finished jobs left
on disk (`done`, `final.json`, `record.jsonl`) and never imports the training code,
so results can be rebuilt on any machine from a copied run folder. Layout read:

    <run>/pretrain/<preset>-seed<k>/                                 the backbone (imagenet12)
    <run>/jobs/<preset>-<protocol>/<method>/<domain>/seed<k>/        one per method, domain, seed

A folder without `done`, with an unreadable `final.json`, or with a predictions file
that final.json names but that is missing or damaged is reported in
`Collection.incomplete` (with the file and what is wrong) and never counted: its
domain is absent from the tables and the submission files. Jobs of several run
folders are pooled.
Aggregation into leaderboards is in `decathlon.report.leaderboard`, writers in
`decathlon.report.tables`, `decathlon.report.plots` and `decathlon.report.submissions`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from decathlon.data import PAPER_ORDER, SOURCE_DOMAIN
from decathlon.jobdir import is_done, read_final, read_records
from decathlon.report.predictions import PredictionsError, read_predictions
from decathlon.report.tracks import (TrackError, backbone_label, job_backbone, options_label, selection_label,
                                     variant_name)

PRETRAIN_METHOD = "pretrain"
BASELINE_METHOD = "finetune"   # the run's own baseline of S where the published one does not apply
EVAL_SPLITS = ("val", "test")
JOB_PATTERNS = ("pretrain/*", "jobs/*/*/*/seed*")

# final.json's cost (decathlon.engine.cost), NaN for a job that has none (older records).
COST_COLUMNS = ["gflops_per_image", "train_images_per_s", "device_hours", "peak_memory_mib"]
# decathlon.report.tracks.job_backbone: which track, backbone, input size and pretraining.
BACKBONE_COLUMNS = ["track", "arch", "input_size", "patch_size", "arch_kwargs", "pretraining_kind", "pretraining",
                    "backbone_tag"]
JOB_COLUMNS = ["path", "preset", "protocol", "method", "eval_policy", "options", "overrides", "variant", "domain",
               "seed",
               "synthetic", "backbone", "preset_protocol", "val_accuracy", "test_accuracy", "val_images",
               "test_images", "test_predictions", "stored_total", "stored_classifier", "stored_shared",
               "reference_parameters", "selection", *COST_COLUMNS, "peak_memory_kind", *BACKBONE_COLUMNS]
INCOMPLETE_COLUMNS = ["path", "method", "domain", "reason"]
CURVE_COLUMNS = ["path", "preset", "protocol", "synthetic", "variant", "domain", "seed",
                 "epoch", "train_loss", "val_accuracy", "test_accuracy"]
POLICY_COLUMNS = ["preset", "protocol", "synthetic", "track", "variant", "split", "domain", "seed", "block", "fraction"]
LAYER_COLUMNS = ["preset", "protocol", "synthetic", "track", "backbone", "method", "variant", "domain", "seed", "layer",
                 "tuned"]


class CollectError(ValueError):
    """A run folder that cannot be collected (missing, or holding no job folders)."""


@dataclass(frozen=True)
class Collection:
    """Everything the writers need, read from the job folders alone.

    jobs: one row per finished job and evaluation (pretraining included, method
      "pretrain"), sorted. A SpotTune job has a row per test-time policy (argmax, sampled)
      from the one training. Accuracies are fractions (NaN where a split was not scored or
      has no labels); the cost columns are the job's (a joint job's FLOPs per domain, its
      time and memory on each of its rows); `variant` is the table row label: the method, its evaluation policy
      when it has one, and every hyperparameter the run overrode (`options`, e.g.
      precision=bf16), so that no deliberate difference is pooled with the preset's rows,
      and the backbone tag of any backbone but the default (decathlon.report.tracks), so that
      no two backbones or tracks are; the BACKBONE_COLUMNS say which track, backbone, input
      size and pretraining the job had (a record that contradicts itself there is incomplete).
    incomplete: unfinished or unreadable job folders (path, method, domain, reason).
    curves: one row per job and epoch of record.jsonl (accuracies as fractions).
    policy: SpotTune's policy usage, one row per job, split and residual block (1-based).
    layers: which layers a job tuned (its evaluation stats' `layer_gates`, e.g. TAPS's), one
      row per job and gated layer (1-based, input first); tuned is 1 or 0.
    """
    run_dirs: tuple
    jobs: pd.DataFrame
    incomplete: pd.DataFrame
    curves: pd.DataFrame
    policy: pd.DataFrame
    layers: pd.DataFrame

    def targets(self) -> pd.DataFrame:
        """Finished jobs of methods on target domains (what the tables rank); a method's own
        job on imagenet12, if any, is left out: that column is the pretraining job's."""
        jobs = self.jobs
        return jobs[(jobs["method"] != PRETRAIN_METHOD) & (jobs["domain"] != SOURCE_DOMAIN)]

    def pretraining(self) -> pd.DataFrame:
        """Finished pretraining jobs: the imagenet12 column of every method."""
        return self.jobs[self.jobs["method"] == PRETRAIN_METHOD]


def collect(run_dirs) -> Collection:
    """Read every job folder under the given run folders; see the module docstring."""
    run_dirs = tuple(Path(run) for run in ([run_dirs] if isinstance(run_dirs, (str, Path)) else run_dirs))
    if not run_dirs:
        raise CollectError("no run folder given")
    jobs, incomplete, curves, policy, layers = [], [], [], [], []
    for run in run_dirs:
        if not run.is_dir():
            raise CollectError(f"{run}: not a folder")
        folders = sorted({p for pattern in JOB_PATTERNS for p in run.glob(pattern) if p.is_dir()})
        if not folders:
            raise CollectError(f"{run}: no job folders (expected pretrain/<preset>-seed<k>/ or "
                               f"jobs/<preset>-<protocol>/<method>/<domain>/seed<k>/)")
        for folder in folders:
            final, reason = _read_final(folder)
            if final is not None:
                reason = _predictions_problem(folder, final)
                final = None if reason else final
            if final is None:
                incomplete.append(dict(zip(INCOMPLETE_COLUMNS, (str(folder), *_identity_from_path(folder), reason))))
                continue
            rows = _job_rows(folder, final)
            jobs += rows
            curves += _curve_rows(folder, {**rows[0], "domain": final["spec"]["domain"]})
            for row, evaluation in zip(rows, _evaluations(final)):
                policy += _policy_rows(evaluation["splits"], row)
                layers += _layer_rows(evaluation["splits"], row)
    return Collection(run_dirs, _sorted(pd.DataFrame(jobs, columns=JOB_COLUMNS)),
                      pd.DataFrame(incomplete, columns=INCOMPLETE_COLUMNS),
                      pd.DataFrame(curves, columns=CURVE_COLUMNS), pd.DataFrame(policy, columns=POLICY_COLUMNS),
                      pd.DataFrame(layers, columns=LAYER_COLUMNS))


def _sorted(jobs: pd.DataFrame) -> pd.DataFrame:
    """Jobs in a fixed order (preset, protocol, method, paper domain order, seed, path)."""
    rank = jobs["domain"].map({d: i for i, d in enumerate(PAPER_ORDER)}).fillna(len(PAPER_ORDER))
    order = jobs.assign(_rank=rank).sort_values(["preset", "protocol", "variant", "_rank", "seed", "path"],
                                                kind="stable").index
    return jobs.loc[order].reset_index(drop=True)


def _read_final(folder: Path) -> tuple:
    """(final.json as a dict, None) for a finished job, else (None, why it is not counted)."""
    if not is_done(folder):
        epochs = len(read_records(folder))
        return None, f"unfinished: no done marker ({epochs} epoch(s) recorded)" if epochs else "not started"
    try:
        final = read_final(folder)
    except FileNotFoundError:
        return None, "done marker but no final.json"
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return None, f"final.json is not valid JSON ({err})"
    if not (isinstance(final, dict) and isinstance(final.get("spec"), dict) and "method" in final["spec"]
            and "domain" in final["spec"] and isinstance(final.get("splits"), dict)):
        return None, "final.json lacks spec.method, spec.domain or splits"
    try:
        job_backbone(final, final["spec"]["method"])
    except TrackError as err:
        return None, f"final.json {err}"
    return final, None


def _predictions_problem(folder: Path, final: dict) -> str | None:
    """Why a finished job's predictions cannot be used (None when every file final.json
    names reads back): a job without them would silently drop its domain."""
    for evaluation in _evaluations(final):
        for split, entry in sorted((evaluation.get("splits") or {}).items()):
            try:
                read_predictions(folder / _predictions_name(entry, split))
            except PredictionsError as err:
                return f"done, but {str(err).removeprefix(f'{folder}/')}"
    return None


def _predictions_name(entry: dict | None, split: str) -> str:
    """The predictions file of a split's entry (format-1 records do not name it)."""
    return (entry or {}).get("predictions") or f"predictions_{split}.npz"


def _identity_from_path(folder: Path) -> tuple:
    """(method, domain) of a job folder that has no readable final.json."""
    if folder.parent.name == "pretrain":
        return PRETRAIN_METHOD, SOURCE_DOMAIN
    return folder.parent.parent.name, folder.parent.name


def _preset_protocol_from_path(folder: Path) -> tuple:
    """(preset, protocol) from the folder names, for records that lack them."""
    if folder.parent.name == "pretrain":
        return folder.name.rsplit("-seed", 1)[0], "train"
    preset, _, protocol = folder.parent.parent.parent.name.rpartition("-")
    return preset, protocol


def _evaluations(final: dict) -> list:
    """final.json's evaluations, one per test-time policy; a format-1 file has one, its
    policy in the hyperparameters."""
    if isinstance(final.get("evaluations"), list) and final["evaluations"]:
        return final["evaluations"]
    return [{"eval_policy": final["spec"].get("hparams", {}).get("eval_policy"), "splits": final["splits"]}]


def _job_rows(folder: Path, final: dict) -> list:
    """One row per evaluation of a finished job."""
    spec = final["spec"]
    path_preset, path_protocol = _preset_protocol_from_path(folder)
    extra, stored = spec.get("extra") or {}, final.get("stored_parameters", {})
    selection = extra.get("selection")
    options = selection_label(selection) if selection else options_label(extra.get("overrides"))
    backbone = job_backbone(final, spec["method"])
    overrides = tuple(sorted(f"{k}={json.dumps(v)}" for k, v in (extra.get("overrides") or {}).items()))
    common = {"path": str(folder), "preset": extra.get("preset", path_preset),
              "protocol": spec.get("protocol", path_protocol), "method": spec["method"], "options": options,
              "overrides": overrides,
              "seed": int(spec.get("seed", 0)), "synthetic": bool(final.get("synthetic")),
              "backbone": backbone_label(final.get("backbone")), "preset_protocol": extra.get("preset_protocol"),
              "stored_shared": stored.get("shared", 0), "reference_parameters": final.get("reference_parameters"),
              "selection": (selection or {}).get("sweep", ""), **backbone}
    cost = final.get("cost") if isinstance(final.get("cost"), dict) else {}
    rows = []
    for evaluation in _evaluations(final):
        policy, splits = evaluation.get("eval_policy"), evaluation.get("splits") or {}
        own = evaluation.get("stored_parameters") or stored   # a multi-domain job's: per domain
        domain = evaluation.get("domain", spec["domain"])
        row = {**common, **_cost_fields(cost, domain), "domain": domain, "eval_policy": policy,
               "variant": variant_name(spec["method"], policy, options, backbone["backbone_tag"]), "stored_total": own.get("total"),
               "stored_classifier": own.get("classifier")}
        for split in EVAL_SPLITS:
            entry = splits.get(split) or {}
            accuracy = entry.get("accuracy")
            row[f"{split}_accuracy"] = float("nan") if accuracy is None else float(accuracy)
            row[f"{split}_images"] = entry.get("num_images")
        row["test_predictions"] = str(folder / _predictions_name(splits.get("test"), "test"))
        rows.append(row)
    return rows


def _cost_fields(cost: dict, domain: str) -> dict:
    """The cost columns of a job's row for `domain` (NaN where the record has no number)."""
    flops = ((cost.get("flops") or {}).get(domain) or {}).get("flops_per_image")
    values = {"gflops_per_image": None if flops is None else flops / 1e9,
              **{key: cost.get(key) for key in COST_COLUMNS[1:]}}
    return {**{key: float("nan") if value is None else float(value) for key, value in values.items()},
            "peak_memory_kind": cost.get("peak_memory_kind")}


def _curve_rows(folder: Path, job: dict) -> list:
    """One row per epoch of record.jsonl; a torn last line (a killed writer) is skipped."""
    return [{**{key: job[key] for key in CURVE_COLUMNS if key in job},
             **{key: epoch.get(key) for key in ("epoch", "train_loss", "val_accuracy", "test_accuracy")}}
            for epoch in read_records(folder)]


def _policy_rows(splits: dict, job: dict) -> list:
    """Fraction of images taking the fine-tuned path of each block, per scored split."""
    rows = []
    for split, entry in sorted(splits.items()):
        usage = ((entry or {}).get("stats") or {}).get("policy_usage")
        for block, fraction in enumerate(usage or (), start=1):
            rows.append({**{key: job[key] for key in POLICY_COLUMNS if key in job},
                         "split": split, "block": block, "fraction": float(fraction)})
    return rows


def _layer_rows(splits: dict, job: dict) -> list:
    """Whether the job tuned each gated layer: the gates are the job's, not a split's, so
    the first scored split that reports them is read."""
    gates = next((entry["stats"]["layer_gates"] for _, entry in sorted(splits.items())
                  if ((entry or {}).get("stats") or {}).get("layer_gates")), ())
    return [{**{key: job[key] for key in LAYER_COLUMNS if key in job}, "layer": layer, "tuned": float(tuned)}
            for layer, tuned in enumerate(gates, start=1)]
