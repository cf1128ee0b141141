"""One epoch's record line (record.jsonl), and its copy as TensorBoard scalars.

With `JobSpec.tensorboard` every record line is also written as TensorBoard events into
<job>/tensorboard/ (torch.utils.tensorboard's SummaryWriter), one scalar per numeric field
at step = the epoch (1-based): the losses (`train_loss`, `train_<term>`), `lr`, the
timings, `val_accuracy` (a joint job's also per domain, `val_accuracy_by_domain/<domain>`)
and the val statistics (SpotTune's `val_stats/policy_usage/<block>`, blocks 1-based). A
resumed job's writer purges the events of the epochs it trains again, as record.jsonl
drops their lines.
"""
from __future__ import annotations

from pathlib import Path

from decathlon.engine.job_checks import finite_or_null
from decathlon.jobdir import TENSORBOARD_DIR

NOT_SCALARS = ("epoch", "trained_until", "step")   # the step itself, a wall-clock time, the step kind


def epoch_record(epoch: int, losses: dict, lr: float, seconds: float, images: int, eval_seconds: float,
                 trained_until: float, step_kind: str, scores: dict) -> dict:
    """The record line of epoch `epoch` (0-based here, 1-based in the line)."""
    return finite_or_null({
        "epoch": epoch + 1, "train_loss": losses.get("loss"),
        **{f"train_{k}": v for k, v in losses.items() if k != "loss"}, "lr": lr,
        "seconds": seconds, "train_images_per_s": images / max(seconds, 1e-9), "eval_seconds": eval_seconds,
        "trained_until": trained_until, "step": step_kind, **_monitored(scores)})


def _monitored(scores: dict) -> dict:
    """The record line's val fields: accuracy and stats, or for several domains their mean
    accuracy and each domain's."""
    if not scores:
        return {}
    if len(scores) == 1:
        (_, result), = scores.items()
        return {"val_accuracy": result.accuracy, **({"val_stats": result.stats} if result.stats else {})}
    accuracies = {domain: r.accuracy for (domain, _), r in scores.items()}
    known = [a for a in accuracies.values() if a is not None]
    return {"val_accuracy": sum(known) / len(known) if known else None, "val_accuracy_by_domain": accuracies}


def record_scalars(record: dict, prefix: str = "") -> dict:
    """{tag: value} of a record line's numbers: nested fields as `field/key`, list items as
    `field/<i>` (1-based); booleans, strings and nulls are left out."""
    scalars = {}
    for key, value in record.items():
        tag = f"{prefix}{key}"
        if not prefix and key in NOT_SCALARS:
            continue
        if isinstance(value, dict):
            scalars.update(record_scalars(value, f"{tag}/"))
        elif isinstance(value, list):
            scalars.update(record_scalars({str(i): v for i, v in enumerate(value, start=1)}, f"{tag}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            scalars[tag] = value
    return scalars


class EpochBoard:
    """A context manager writing each record line as TensorBoard scalars when `enabled`
    (else doing nothing, and never importing tensorboard)."""

    def __init__(self, job_folder, start_epoch: int, enabled: bool):
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: events at or after the first epoch trained again are hidden.
            self.writer = SummaryWriter(str(Path(job_folder) / TENSORBOARD_DIR),
                                        purge_step=start_epoch + 1 if start_epoch else None)

    def add(self, record: dict) -> None:
        if self.writer is None:
            return
        for tag, value in record_scalars(record).items():
            self.writer.add_scalar(tag, value, record["epoch"])
        self.writer.flush()   # a killed job keeps the epochs it recorded

    def __enter__(self) -> "EpochBoard":
        return self

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()
