"""The benchmark as a plan of jobs (`plan`), the hyperparameter registry with its presets
(`hparams_registry`) and search ranges (`search_spaces`), the runner that spreads the jobs
to a launcher, wave by wave (`run`; the launchers are decathlon.launch), sweeps of trials (`sweep`) and the selection among
them (`selection`)."""
from decathlon.benchmark.hparams_registry import (PRESETS, hparams, joint_hparams, parse_overrides, preset_protocol,
                                                  pretrain_hparams)
from decathlon.benchmark.plan import BenchmarkConfig, domain_label, job_extra, plan_jobs
from decathlon.benchmark.run import run_benchmark
from decathlon.benchmark.search_spaces import SAMPLERS, SEARCH_SPACES, Range, draw_trials, search_space, settings_slug
from decathlon.benchmark.selection import SELECTION_FILE, select
from decathlon.benchmark.sweep import SWEEP_FILE, TRIAL_FILE, SweepConfig, Trial, plan_trials, run_sweep

__all__ = ["BenchmarkConfig", "PRESETS", "Range", "SAMPLERS", "SEARCH_SPACES", "SELECTION_FILE", "SWEEP_FILE",
           "SweepConfig", "TRIAL_FILE", "Trial", "domain_label", "draw_trials", "hparams",
           "job_extra", "joint_hparams", "parse_overrides", "plan_jobs", "plan_trials", "preset_protocol",
           "pretrain_hparams", "run_benchmark", "run_sweep", "search_space", "select", "settings_slug"]
