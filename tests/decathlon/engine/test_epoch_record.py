"""Record lines as TensorBoard scalars: the tags, nothing written when off, and a resumed
job's events replacing those of the epochs it trains again."""
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from decathlon.engine import record_scalars
from decathlon.engine.epoch_record import EpochBoard


def _line(epoch, loss):
    return {"epoch": epoch, "train_loss": loss, "train_budget_loss": None, "lr": 0.1, "trained_until": 1.7e9,
            "step": "eager", "val_accuracy": 0.5, "val_stats": {"policy_usage": [0.25, 1.0]},
            "val_accuracy_by_domain": {"dtd": 0.4}}


def test_scalars_of_a_record_line():
    assert record_scalars(_line(3, 2.0)) == {
        "train_loss": 2.0, "lr": 0.1, "val_accuracy": 0.5, "val_stats/policy_usage/1": 0.25,
        "val_stats/policy_usage/2": 1.0, "val_accuracy_by_domain/dtd": 0.4}


def test_off_writes_nothing(tmp_path):
    with EpochBoard(tmp_path, 0, enabled=False) as board:
        board.add(_line(1, 2.0))
    assert not (tmp_path / "tensorboard").exists()


def test_a_resumed_job_replaces_the_epochs_it_trains_again(tmp_path):
    with EpochBoard(tmp_path, 0, enabled=True) as board:
        for epoch in (1, 2, 3):
            board.add(_line(epoch, float(epoch)))
    with EpochBoard(tmp_path, 2, enabled=True) as board:   # killed before epoch 3's checkpoint
        board.add(_line(3, 30.0))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    losses = events.Scalars("train_loss")
    assert [s.step for s in losses] == [1, 2, 3]
    assert [s.value for s in losses] == pytest.approx([1.0, 2.0, 30.0])
