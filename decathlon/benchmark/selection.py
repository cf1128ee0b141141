"""Model selection over a finished sweep (DomainBed's model_selection, training-domain
validation), then the chosen settings run under the preset's own protocol.

Per (method, domain), the candidates are the sweep's trials whose every seed finished with
a record of this sweep (its sweep.json digest and the trial's hyperparameters); the chosen
one has the best mean val accuracy over seeds under protocol train (ties: the lowest trial
index). A job folder under <sweep>/jobs that is not one of the sweep's trials, or whose
record was made by other settings, is reported and never counted. `selection.json` in the
sweep folder says what was chosen among which candidates. The chosen settings then run
for the sweep's seeds as ordinary jobs of a run folder (default <sweep>/selected), each
recording the selection in its spec's `extra["selection"]`, which the tables show as
"selected on val over N trials" and never pool with the preset's own rows.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from decathlon.benchmark.hparams_registry import hparams, preset_protocol
from decathlon.benchmark.plan import check_data, plan_jobs
from decathlon.benchmark.sweep import (TRIAL_PROTOCOL, check_same_sweep, config_of_sweep, plan_trials,
                                       prepare_backbone, run_specs, sweep_id, sweep_identity)
from decathlon.files import folder_lock, write_json_atomic
from decathlon.jobdir import is_done, read_final

SELECTION_FILE = "selection.json"
SELECTED_BY = "mean val accuracy over seeds, protocol train"


def gather(trials: list, identity: dict, seeds: int, jobs_root: Path) -> tuple:
    """({(method, domain): [candidate, ...]}, ignored [{path, reason}], unfinished [path]).
    A candidate: {trial, settings, val_accuracy (mean over seeds), seeds: [val accuracy]}."""
    candidates, ignored, unfinished, expected = {}, [], [], set()
    for trial in trials:
        accuracies = []
        for seed in range(seeds):
            folder = trial.job(seed)
            expected.add(folder)
            if not is_done(folder):
                unfinished.append(str(folder))
                continue
            reason, accuracy = _trial_record(folder, trial, seed, identity)
            if reason:
                ignored.append({"path": str(folder), "reason": reason})
            else:
                accuracies.append(accuracy)
        if len(accuracies) == seeds:
            candidates.setdefault((trial.method, trial.domain), []).append(
                {"trial": trial.index, "settings": trial.settings, "folder": str(trial.folder),
                 "val_accuracy": sum(accuracies) / seeds, "seeds": accuracies})
    for folder in sorted(jobs_root.glob("*/*/*/seed*")):
        if folder.is_dir() and folder not in expected:
            ignored.append({"path": str(folder), "reason": "not a trial of this sweep (its settings or seed are "
                                                            "not drawn by sweep.json)"})
    return candidates, ignored, unfinished


def _trial_record(folder: Path, trial, seed: int, identity: dict) -> tuple:
    """(why the job does not count or None, its val accuracy)."""
    try:
        final = read_final(folder)
        spec = final["spec"]
        recorded = (spec.get("extra") or {}).get("sweep") or {}
        accuracy = final["splits"]["val"]["accuracy"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"final.json unreadable or without a val accuracy ({err!r})", None
    if recorded.get("id") != sweep_id(identity):
        return f"made by another sweep (sweep {recorded.get('id')}, this one {sweep_id(identity)})", None
    wanted = {"method": trial.method, "domain": trial.domain, "seed": seed, "protocol": TRIAL_PROTOCOL,
              "hparams": hparams(trial.method, trial.domain, identity["preset"],
                                 {**identity["overrides"], **trial.settings})}
    differs = [key for key, value in wanted.items() if spec.get(key) != value]
    if differs:
        return f"its {', '.join(differs)} differ from the trial's", None
    if accuracy is None:
        return "no val accuracy recorded", None
    return None, float(accuracy)


def choose(candidates: dict) -> list:
    """Per (method, domain), the best candidate (ties: the lowest trial index)."""
    choices = []
    for (method, domain), found in candidates.items():
        best = max(found, key=lambda c: (c["val_accuracy"], -c["trial"]))
        choices.append({"method": method, "domain": domain, "trial": best["trial"], "settings": best["settings"],
                        "val_accuracy": best["val_accuracy"], "trials": len(found), "candidates": found})
    return choices


def select(sweep_dir, run_dir=None, **execution) -> tuple:
    """Choose per method and domain, write selection.json, run the choices under the
    preset's protocol into `run_dir` (default <sweep>/selected); returns (selection, run_dir)."""
    config = config_of_sweep(sweep_dir, **execution)
    manifest = check_data(config.benchmark())
    identity = sweep_identity(config)
    check_same_sweep(sweep_dir, identity)   # the data or backbone changed since the sweep ran
    run_dir = Path(run_dir or Path(sweep_dir) / "selected")
    with folder_lock(sweep_dir, "sweep folder"):
        candidates, ignored, unfinished = gather(plan_trials(config), identity, config.seeds,
                                                 Path(sweep_dir) / "jobs")
        if unfinished:
            raise ValueError(f"{sweep_dir}: {len(unfinished)} trial job(s) unfinished (first: {unfinished[0]}); "
                             "run the same `decathlon sweep` again to finish them, then select")
        lacking = sorted({(m, d) for m in config.methods for d in config.domains} - set(candidates))
        if lacking:
            raise ValueError(f"{sweep_dir}: no trial of {', '.join(f'{m} on {d}' for m, d in lacking)} counts "
                             f"(every one has an ignored job: {ignored[0]['path']}: {ignored[0]['reason']})")
        selection = {"sweep": str(sweep_dir), "sweep_id": sweep_id(identity), "by": SELECTED_BY,
                     "final_protocol": preset_protocol(config.preset), "choices": choose(candidates),
                     "ignored": ignored}
        write_json_atomic(Path(sweep_dir) / SELECTION_FILE, selection)
        backbone = prepare_backbone(config.benchmark(), manifest, config.launcher)
        final = config.benchmark(out=str(run_dir), protocol=selection["final_protocol"], backbone=str(backbone))
        with folder_lock(run_dir, "run folder"):
            specs = selected_specs(selection, final, prepare_backbone(final, manifest, config.launcher),
                                   config.overrides)
            _refuse_foreign_jobs(run_dir, specs)
            run_specs(specs, final, config.launcher)
    return selection, run_dir


def selected_specs(selection: dict, final, backbone: Path, fixed: dict) -> list:
    """The final jobs: per choice, the run's jobs with the chosen settings, each recording
    the selection (what the tables say about the row)."""
    specs = []
    for choice in selection["choices"]:
        run = replace(final, methods=(choice["method"],), domains=(choice["domain"],),
                      overrides={**fixed, **choice["settings"]})
        record = {"sweep": selection["sweep"], "sweep_id": selection["sweep_id"], "trials": choice["trials"],
                  "trial": choice["trial"], "by": selection["by"], "fixed": dict(fixed)}
        specs += [replace(spec, extra={**spec.extra, "selection": record}) for spec in plan_jobs(run, backbone)]
    return specs


def _refuse_foreign_jobs(run_dir: Path, specs: list) -> None:
    """The run folder's tables are made of its jobs alone: a job there that is not one of
    this selection's (another selection's, a run's) would be pooled with them."""
    planned = {Path(spec.out) for spec in specs}
    for folder in sorted(run_dir.glob("jobs/*/*/*/seed*")):
        if folder.is_dir() and folder not in planned:
            raise ValueError(f"{run_dir}: holds the job {folder}, which is not one of this selection's; its "
                             "tables would pool them: choose another --out or remove that folder")
