"""The benchmark as a plan of jobs (`plan`), the hyperparameter registry with its presets
(`hparams_registry`), and the runner that hands its jobs to a launcher, wave by wave (`run`;
the launchers are decathlon.launch)."""
from decathlon.benchmark.hparams_registry import (PRESETS, hparams, joint_hparams, parse_overrides, preset_protocol,
                                                  pretrain_hparams)
from decathlon.benchmark.plan import BenchmarkConfig, domain_label, job_extra, plan_jobs
from decathlon.benchmark.run import run_benchmark

__all__ = ["BenchmarkConfig", "PRESETS", "domain_label", "hparams", "job_extra",
           "joint_hparams", "parse_overrides", "plan_jobs", "preset_protocol", "pretrain_hparams", "run_benchmark"]
