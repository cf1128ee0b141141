"""The benchmark as a plan of jobs (`plan`), the hyperparameter registry with its presets
(`hparams_registry`), and the runner that spreads the jobs over processes and devices (`run`)."""
from decathlon.benchmark.hparams_registry import (PRESETS, hparams, joint_hparams, parse_overrides, preset_protocol,
                                                  pretrain_hparams)
from decathlon.benchmark.plan import BenchmarkConfig, domain_label, job_extra, plan_jobs
from decathlon.benchmark.run import default_jobs_per_device, run_benchmark, run_jobs

__all__ = ["BenchmarkConfig", "PRESETS", "default_jobs_per_device", "domain_label", "hparams", "job_extra",
           "joint_hparams", "parse_overrides", "plan_jobs", "preset_protocol", "pretrain_hparams", "run_benchmark",
           "run_jobs"]
