"""Training and evaluating one job, nothing else: the loop (`trainer`), the step (`step`,
eager or a CUDA graph), evaluation, what a finished job writes (`results`), the checks a
job makes (`job_checks`), pretraining jobs, the joint interleaving and torchrun/DDP
(`distributed`)."""
from decathlon.engine.evaluation import EvalResult, evaluate
from decathlon.engine.job_checks import DivergedError, JobError, steps_per_epoch
from decathlon.engine.pretraining import evaluate_backbone, pretrain
from decathlon.engine.step import PRECISIONS, LossMeter, autocast_for, configure_precision, make_step
from decathlon.engine.schedule import LR_SCHEDULES, lr_schedule
from decathlon.engine.trainer import PROTOCOLS, JobSpec, evaluate_monitored, run_job, train_one_epoch

__all__ = ["DivergedError", "EvalResult", "JobError", "JobSpec", "LR_SCHEDULES", "LossMeter", "PRECISIONS", "PROTOCOLS",
           "autocast_for", "configure_precision", "evaluate", "evaluate_backbone", "evaluate_monitored",
           "lr_schedule", "make_step", "pretrain", "run_job", "steps_per_epoch", "train_one_epoch"]
