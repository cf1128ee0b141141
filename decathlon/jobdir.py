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
    peft_domain.pt      what one bitfit / lora / vpt / adaptformer domain ships: what it trained
    imported.json       a job folder made by `decathlon import-spottune`, not by training
    config.yaml         the job's settings as `decathlon train` (or `pretrain`) options: pass it
                        back with --config to train the same job again; a run folder has one too,
                        its `decathlon run` options (docs/config.md)
    tensorboard/        with --tensorboard: the record lines as TensorBoard events

Everything that reads job folders (the runner's skip of finished jobs, assemble, collect,
the benchmarks) goes through these names and readers, as DomainBed's one reader of job
records does.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from decathlon.files import write_bytes_atomic

RECORD_FILE = "record.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
FINAL_FILE = "final.json"
DONE_FILE = "done"
BACKBONE_FILE = "backbone.pt"
DOMAIN_FILE = "spottune_domain.pt"
MODEL_FILE = "spottune_multidomain.pt"
PIGGYBACK_FILE = "piggyback_domain.pt"   # a piggyback job's bit-packed masks, BN layers, classifier
TAPS_DOMAIN_FILE = "taps_domain.pt"
PEFT_DOMAIN_FILE = "peft_domain.pt"
IMPORTED_JOB_FILE = "imported.json"
CONFIG_FILE = "config.yaml"
TENSORBOARD_DIR = "tensorboard"
# final.json's "pretraining" kinds by track: the closed track learned from the Decathlon's own
# data only (imagenet12 pretrained by this suite, the public .t7 trained on it, or nothing);
# the open track's backbones saw external data (a weight file, timm's hub).
CLOSED_PRETRAINING = ("suite", "imported", "none")
OPEN_PRETRAINING = ("external", "timm-hub")


def track_of(pretraining_kind: str) -> str:
    """final.json's "track" of a job whose backbone was pretrained so."""
    return "open" if pretraining_kind in OPEN_PRETRAINING else "closed"


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


def read_config_file(path) -> dict:
    """A config file's mapping of option names to values (yaml.safe_load: no object is ever
    built from a tag); a missing file, invalid YAML (with its line) or a file that is not a
    mapping raises ValueError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot be read as a config file ({err})") from None
    try:
        settings = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{path}{where}: invalid YAML: {problem}") from None
    if settings is None:
        return {}
    if not isinstance(settings, dict) or not all(isinstance(key, str) for key in settings):
        raise ValueError(f"{path}: expected a mapping of option names to values, got {type(settings).__name__}")
    return settings


def write_config(folder, settings: dict) -> Path:
    """<folder>/config.yaml, atomically, keys in the given order (tuples as lists)."""
    plain = json.loads(json.dumps(settings, allow_nan=False))   # what JSON cannot hold, YAML readers choke on
    return write_bytes_atomic(Path(folder) / CONFIG_FILE, yaml.safe_dump(plain, sort_keys=False))


def claim_run_config(folder, settings: dict, free_keys=(), grow_keys=()) -> Path:
    """Write a run folder's config.yaml; a folder that already holds work (a subfolder: jobs,
    pretraining) under a config.yaml of other settings (any key but `free_keys`, which only
    say how the run is executed, and `grow_keys`) is refused, naming each differing key: the
    run folder's jobs and tables belong to one set of settings. A `grow_keys` entry (the
    methods, domains, seeds a run covers) may grow: the file keeps the union of the lists
    (the larger of two counts), so passing it back reruns everything the folder holds."""
    path = Path(folder) / CONFIG_FILE
    new = json.loads(json.dumps(settings, allow_nan=False))
    if path.is_file() and any(entry.is_dir() for entry in Path(folder).iterdir()):
        old = read_config_file(path)
        differ = [f"{key}: {json.dumps(old.get(key))} there, {json.dumps(new.get(key))} now"
                  for key in sorted(set(old) | set(new))
                  if key not in free_keys and key not in grow_keys and old.get(key) != new.get(key)]
        if differ:
            raise ValueError(f"{path}: this run folder was made with other settings ({'; '.join(differ)}); "
                             f"rerun it with --config {path} or choose another --out")
        for key in grow_keys:
            new[key] = _grown(old.get(key), new.get(key))
    return write_config(folder, new)


def _grown(old, new):
    """The union of two lists (old order first), the larger of two counts, else the new value."""
    if isinstance(old, list) and isinstance(new, list):
        return old + [item for item in new if item not in old]
    if isinstance(old, int) and isinstance(new, int) and not isinstance(old, bool):
        return max(old, new)
    return new
