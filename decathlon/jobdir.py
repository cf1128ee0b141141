"""The job folder: every file name a job writes, and the readers of what it wrote.

    record.jsonl        one JSON line per epoch (strict JSON)
    checkpoint.pt       the last epoch's state, written atomically (our own format)
    predictions_*.npz   image ids and predicted labels per split (and test-time policy)
    final.json          the job's spec, accuracies, parameters, backbone and data records
    done                written last: the job finished and everything above is complete
    backbone.pt         a pretraining job's backbone
    spottune_domain.pt  what one SpotTune domain ships beside the shared backbone
    spottune_multidomain.pt   a whole multi-domain SpotTune model (joint jobs, assemble)
    taps_domain.pt      what one TAPS domain ships: its gates and the deltas of its tuned layers
    imported.json       a job folder made by `decathlon import-spottune`, not by training
    tensorboard/        with --tensorboard: the record lines as TensorBoard events

Everything that reads job folders (the runner's skip of finished jobs, assemble, collect,
the benchmarks) goes through these names and readers, as DomainBed's one reader of job
records does.
"""
from __future__ import annotations

import json
from pathlib import Path

RECORD_FILE = "record.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
FINAL_FILE = "final.json"
DONE_FILE = "done"
BACKBONE_FILE = "backbone.pt"
DOMAIN_FILE = "spottune_domain.pt"
MODEL_FILE = "spottune_multidomain.pt"
PIGGYBACK_FILE = "piggyback_domain.pt"   # a piggyback job's bit-packed masks, BN layers, classifier
TAPS_DOMAIN_FILE = "taps_domain.pt"
IMPORTED_JOB_FILE = "imported.json"
TENSORBOARD_DIR = "tensorboard"


def predictions_file(split: str, policy: str | None, reported: bool, domain: str | None = None) -> str:
    """predictions_[<domain>_]<split>.npz for the reported policy, ...<split>-eval-<policy>.npz
    for another (the domain named in multi-domain jobs only)."""
    prefix = f"predictions_{domain}_" if domain else "predictions_"
    return f"{prefix}{split}.npz" if reported else f"{prefix}{split}-eval-{policy}.npz"


def is_done(folder) -> bool:
    """Whether the job in `folder` finished (its `done` marker is written last)."""
    return (Path(folder) / DONE_FILE).is_file()


def mark_done(folder) -> None:
    (Path(folder) / DONE_FILE).write_text("")


def read_final(folder) -> dict:
    """The job's final.json (raises FileNotFoundError, or ValueError for a damaged file)."""
    return json.loads((Path(folder) / FINAL_FILE).read_text())


def read_records(folder) -> list:
    """The epoch lines of record.jsonl, in order; a torn last line (a killed writer) is
    left out, and a job that recorded nothing gives []."""
    path = Path(folder) / RECORD_FILE
    records = []
    for line in path.read_text().splitlines() if path.is_file() else ():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_record(folder, record: dict) -> None:
    """One epoch line, strict JSON (a NaN or infinity is refused, never written)."""
    with open(Path(folder) / RECORD_FILE, "a") as f:
        f.write(json.dumps(record, allow_nan=False) + "\n")


def truncate_records(folder, epochs_kept: int) -> None:
    """Drop record lines of epochs past the checkpoint (a kill between record and checkpoint)."""
    path = Path(folder) / RECORD_FILE
    if path.is_file():
        lines = path.read_text().splitlines()[:epochs_kept]
        path.write_text("".join(line + "\n" for line in lines))
