"""Sweeps: the draws (seeded, order-independent, the grid), sweep.json's refusal of other
settings, and the selection's reading of trial folders (foreign and stale ones left out)."""
import itertools
import json
from dataclasses import replace

import pytest

from decathlon.benchmark import (SEARCH_SPACES, SWEEP_FILE, SweepConfig, draw_trials, hparams, plan_trials, run_sweep,
                                 settings_slug)
from decathlon.benchmark.selection import choose, gather
from decathlon.benchmark.sweep import sweep_id, sweep_identity
from decathlon.files import write_json_atomic
from decathlon.jobdir import mark_done


def test_random_draws_are_seeded_by_sweep_method_domain_and_trial_alone():
    alone = draw_trials("spottune_global", "svhn", 4, sweep_seed=7)
    assert alone == draw_trials("spottune_global", "svhn", 4, sweep_seed=7)
    assert alone[:2] == draw_trials("spottune_global", "svhn", 2, sweep_seed=7)   # more trials add, never change
    assert alone != draw_trials("spottune_global", "svhn", 4, sweep_seed=8)
    assert alone != draw_trials("spottune_global", "dtd", 4, sweep_seed=7)
    config = SweepConfig(methods=("finetune", "spottune_global"), domains=("dtd", "svhn"), trials=4, sweep_seed=7,
                         out="sweep")
    swapped = replace(config, methods=("spottune_global", "finetune"), domains=("svhn", "dtd"))
    by_key = {(t.method, t.domain, t.index): t.settings for t in plan_trials(config)}
    assert by_key == {(t.method, t.domain, t.index): t.settings for t in plan_trials(swapped)}
    assert [by_key[("spottune_global", "svhn", t)] for t in range(4)] == alone
    for settings in alone:   # inside the ranges, of the registry's types
        space = SEARCH_SPACES["spottune_global"]
        assert all(space[key].low <= value <= space[key].high for key, value in settings.items())
        assert isinstance(settings["budget_blocks"], int) and isinstance(settings["lr"], float)


def test_the_grid_sampler_takes_the_product_of_the_grid_points_in_order():
    space = SEARCH_SPACES["finetune"]
    grid = [dict(zip(("lr", "weight_decay"), point)) for point in itertools.product(space["lr"].grid,
                                                                                  space["weight_decay"].grid)]
    assert draw_trials("finetune", "dtd", len(grid), "grid") == grid
    assert draw_trials("finetune", "dtd", 2, "grid") == grid[:2]
    with pytest.raises(ValueError, match=f"the grid has {len(grid)} point"):
        draw_trials("finetune", "dtd", len(grid) + 1, "grid")


def test_fixed_keys_are_not_searched_and_unsweepable_methods_are_refused():
    draws = draw_trials("finetune", "dtd", 3, fixed={"lr": 0.01})
    assert all(set(d) == {"weight_decay"} for d in draws)
    with pytest.raises(ValueError, match="nothing is left to sweep"):
        draw_trials("finetune", "dtd", 3, fixed={"lr": 0.01, "weight_decay": 0.0})
    with pytest.raises(KeyError, match="'nettailor' cannot be swept"):
        draw_trials("nettailor", "dtd", 3)
    with pytest.raises(ValueError, match="'epochs' is 1.5"):   # a fixed override checked like --hparam
        draw_trials("finetune", "dtd", 3, fixed={"epochs": 1.5})


def test_a_relaunch_with_other_settings_is_refused_naming_the_field(tiny_decathlon, tmp_path):
    out = tmp_path / "sweep"
    config = SweepConfig(str(tiny_decathlon), str(out), ("finetune",), ("dtd",), trials=2, device="cpu",
                         progress=False, overrides={"width": 0.125})
    write_json_atomic(out / SWEEP_FILE, sweep_identity(config))   # as a first launch leaves it
    before = (out / SWEEP_FILE).read_text()
    for change, field in (({"trials": 3}, "trials"), ({"sweep_seed": 1}, "sweep_seed"),
                          ({"overrides": {"width": 0.25}}, "overrides"), ({"domains": ("svhn",)}, "domains")):
        with pytest.raises(ValueError, match=f"field '{field}' is"):
            run_sweep(replace(config, **change))
    assert (out / SWEEP_FILE).read_text() == before and not (out / "jobs").exists()   # nothing run or written


def _finished_trial_job(folder, trial, seed, identity, accuracy, tag=None):
    """The record a finished trial job leaves (final.json's fields the selection reads)."""
    spec = {"method": trial.method, "domain": trial.domain, "seed": seed, "protocol": "train",
            "hparams": hparams(trial.method, trial.domain, identity["preset"],
                               {**identity["overrides"], **trial.settings}),
            "extra": {"sweep": {"id": tag or sweep_id(identity), "trial": trial.index}}}
    folder.mkdir(parents=True)
    write_json_atomic(folder / "final.json", {"spec": spec, "splits": {"val": {"accuracy": accuracy}}})
    mark_done(folder)


def test_selection_counts_only_the_sweeps_own_trials(tiny_decathlon, tmp_path):
    config = SweepConfig(str(tiny_decathlon), str(tmp_path), ("finetune",), ("dtd",), trials=3, seeds=2)
    identity = sweep_identity(config)
    trials = plan_trials(config)
    accuracies = {0: (0.5, 0.7), 1: (0.6, 0.6), 2: (0.9, 0.9)}
    for trial in trials:
        for seed in range(2):
            # trial 2 (the best) has a seed made by another sweep in its folder: not counted
            tag = "0123456789ab" if (trial.index, seed) == (2, 1) else None
            _finished_trial_job(trial.job(seed), trial, seed, identity, accuracies[trial.index][seed], tag)
    foreign = tmp_path / "jobs" / "finetune" / "dtd" / settings_slug({"lr": 0.5, "weight_decay": 0.1}) / "seed0"
    _finished_trial_job(foreign, replace(trials[0], settings={"lr": 0.5, "weight_decay": 0.1}), 0, identity, 1.0)

    candidates, ignored, unfinished = gather(trials, identity, 2, tmp_path / "jobs")
    assert unfinished == []
    assert {entry["path"]: entry["reason"].split(" (")[0] for entry in ignored} == {
        str(trials[2].job(1)): "made by another sweep", str(foreign): "not a trial of this sweep"}
    (choice,) = choose(candidates)
    # trials 0 and 1 tie at a mean of 0.6: the lower index wins
    assert (choice["trial"], choice["trials"], choice["val_accuracy"]) == (0, 2, pytest.approx(0.6))
    assert choice["settings"] == trials[0].settings

    (trials[1].job(0) / "done").unlink()
    assert gather(trials, identity, 2, tmp_path / "jobs")[2] == [str(trials[1].job(0))]
