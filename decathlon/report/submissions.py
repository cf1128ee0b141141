"""Submission files for the evaluation server, rebuilt from a run's test predictions.

One file per (preset, protocol, method variant, seed):
`submissions/<preset>-<protocol>/results_<variant>_seed<k>.json` (prefixed `synthetic-`
for synthetic data), holding that seed's target-domain test predictions plus imagenet12
from the pretraining job of the same preset (the same seed when there is one, else the
lowest) of the same backbone; an open-track variant has none (its backbone was pretrained
outside the suite), and no variant takes another backbone's. Each file is written with `write_results` and read back through
`validate_results`: on real data against the official test ids of the domains it
covers (every one of them predicted exactly once), on synthetic data against the ids
the jobs predicted (the synthetic splits are smaller than the official ones). A file
that fails is removed and its problem reported; `complete` means all 139,760 real test
images, i.e. ready to zip as results.json and upload.

A domain without predictions (never trained, or its job incomplete: see
`collect`) is listed in the summary's `missing`, with the incomplete job's folder. The
evaluation server wants all ten domains in one upload, so a real-data file that lacks
one is still written (`decathlon score` scores it locally and lists what it lacks) but
named `results_<variant>_seed<k>.partial.json`: only a `results_*.json` without
`.partial` is a full submission.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from decathlon.report.collection import Collection
from decathlon.data import PAPER_ORDER, SOURCE_DOMAIN
from decathlon.report.predictions import PredictionsError, read_predictions
from decathlon.report.tracks import OPEN
from decathlon.scoring import ResultsError, official_test_ids, validate_results, write_results

SUBMISSIONS_DIR = "submissions"
SUMMARY_COLUMNS = ["file", "data", "preset", "protocol", "method", "seed", "domains", "entries", "complete",
                   "missing", "problem"]


def slug(text: str) -> str:
    """A file-name form of a label: 'spottune (eval argmax)' -> 'spottune-eval-argmax'."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-").lower()


def _load_predictions(path) -> tuple | None:
    """(image_ids, labels) of a job's test predictions file, None where the job predicted
    no test split (collect has already refused jobs whose named files are missing)."""
    return read_predictions(path) if Path(path).exists() else None


def _missing(collection: Collection, predicted, preset: str, protocol: str, seed: int) -> str:
    """The domains a submission lacks, each with the folder of its incomplete job if any."""
    incomplete = {}
    for row in collection.incomplete.itertuples():
        folder = Path(row.path)
        if folder.name == f"seed{seed}" and folder.parent.parent.parent.name == f"{preset}-{protocol}":
            incomplete[row.domain] = row.path
    return ", ".join(f"{d} (job incomplete: {incomplete[d]})" if d in incomplete else d
                     for d in PAPER_ORDER if d not in predicted)


def _source_predictions(collection: Collection, preset: str, synthetic: bool, seed: int, job) -> tuple | None:
    """imagenet12 test predictions of the pretraining job of `job`'s backbone, if it has any."""
    if job.track == OPEN:
        return None
    pretraining = collection.pretraining()
    jobs = pretraining[(pretraining["preset"] == preset) & (pretraining["synthetic"] == synthetic)
                       & (pretraining["backbone"] == job.backbone) & (pretraining["backbone_tag"] == job.backbone_tag)]
    if jobs.empty:
        return None
    same_seed = jobs[jobs["seed"] == seed]
    chosen = same_seed if len(same_seed) else jobs.sort_values("seed", kind="stable")
    return _load_predictions(chosen["test_predictions"].iloc[0])


def write_submissions(collection: Collection, out_dir) -> pd.DataFrame:
    """Write every submission file under out_dir/submissions; returns one summary row per file."""
    out_dir = Path(out_dir)
    rows = []
    targets = collection.targets()
    keys = ["synthetic", "preset", "protocol", "variant", "seed"]
    for (synthetic, preset, protocol, variant, seed), jobs in targets.groupby(keys, sort=True):
        try:
            predictions = {row.domain: _load_predictions(row.test_predictions) for row in jobs.itertuples()}
            source = _source_predictions(collection, preset, bool(synthetic), int(seed), next(jobs.itertuples()))
        except PredictionsError as err:   # damaged since collect read it
            predictions, source, problem = {}, None, str(err)
        else:
            problem = ""
        if source is not None:
            predictions[SOURCE_DOMAIN] = source
        predictions = {domain: p for domain, p in predictions.items() if p is not None}
        if not predictions and not problem:
            continue
        missing = _missing(collection, predictions, preset, protocol, int(seed))
        folder = f"{'synthetic-' if synthetic else ''}{preset}-{protocol}"
        partial = ".partial" if missing and not synthetic else ""
        path = out_dir / SUBMISSIONS_DIR / folder / f"results_{slug(variant)}_seed{seed}{partial}.json"
        row = {"file": str(path.relative_to(out_dir)), "data": "SYNTHETIC" if synthetic else "real",
               "preset": preset, "protocol": protocol, "method": variant, "seed": int(seed),
               "domains": len(predictions), "entries": sum(len(ids) for ids, _ in predictions.values()),
               "complete": False, "missing": missing, "problem": problem}
        rows.append(row)
        if problem:
            continue
        expected = ({d: ids for d, (ids, _) in predictions.items()} if synthetic
                    else official_test_ids(list(predictions)))
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_results(predictions, path)
            validate_results(path, expected, require_full=True)
        except ResultsError as err:
            path.unlink(missing_ok=True)
            row["problem"] = str(err).removeprefix(f"{path}: ")
            continue
        row["complete"] = not synthetic and not missing
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
