"""Training and evaluating one job, nothing else: the loop (`trainer`), the step (`step`,
eager or a CUDA graph), evaluation, what a finished job writes (`results`), the checks a
job makes (`job_checks`), pretraining jobs, the joint interleaving and torchrun/DDP
(`distributed`); what a job cost (`cost`: FLOPs, device-hours, peak memory) and its record
lines as TensorBoard events (`epoch_record`)."""
from decathlon.engine.cost import FLOP_IMAGES, flops_per_image
from decathlon.engine.epoch_record import record_scalars
from decathlon.engine.evaluation import EvalResult, evaluate
from decathlon.engine.job_checks import DivergedError, JobError, steps_per_epoch
from decathlon.engine.pretraining import evaluate_backbone, pretrain
from decathlon.engine.step import PRECISIONS, LossMeter, autocast_for, configure_precision, make_step
from decathlon.engine.schedule import LR_SCHEDULES, lr_schedule
from decathlon.engine.trainer import PROTOCOLS, JobSpec, evaluate_monitored, run_job, train_one_epoch

__all__ = ["DivergedError", "EvalResult", "FLOP_IMAGES", "JobError", "JobSpec", "LR_SCHEDULES", "LossMeter",
           "PRECISIONS", "PROTOCOLS", "autocast_for", "configure_precision", "evaluate", "evaluate_backbone",
           "evaluate_monitored", "flops_per_image", "lr_schedule", "make_step", "pretrain", "record_scalars", "run_job",
           "steps_per_epoch", "train_one_epoch"]
