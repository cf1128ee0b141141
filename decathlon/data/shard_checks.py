"""Each shard a training job reads, checked against the manifest before the job uses it.

A shard is accepted when its sha256 is the one the manifest recorded when it was prepared
(a flipped pixel byte, a changed label or image id all change it) and its labels and
image ids are what the manifest says they can be: labels in 0..num_classes-1 (or all -1
for a split without labels) and image ids of the domain and split (d*10**7 + s*10**5 + k),
each once. `data_prep verify` runs the same label and id checks (`label_and_id_problems`).

Hashing a large split takes a while, so a shard that passed is remembered in
`<data>/.verified.json`, keyed by its file's size and mtime_ns and by what the manifest
expects of it (sha256, num_classes, whether it has labels): a rerun checks only what
changed. The file is written atomically (temporary name, then rename) from a fresh read,
so concurrent jobs and torchrun ranks reading the same data folder never see half of it;
when two of them write at once one's entries may be lost, which only costs a second hash
next time. A data folder that cannot be written is simply not cached.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from decathlon.data.domains import ID_DOMAIN_FACTOR, ID_SPLIT_FACTOR, SPLIT_INDEX, get_domain
from decathlon.data.manifest import MANIFEST_NAME, split_entry
from decathlon.data.shard_files import PREPARE_HINT, ShardError
from decathlon.files import sha256_file, write_bytes_atomic

VERIFIED_FILE = ".verified.json"


def _first(mask: np.ndarray, what: str, values: np.ndarray, name: str) -> list:
    """One problem line for the rows where `mask` holds: how many, and the first of them."""
    bad = np.flatnonzero(mask)
    return [f"{len(bad)} {what} (first: row {bad[0]}, {name} {values[bad[0]]})"] if len(bad) else []


def label_and_id_problems(labels: np.ndarray, image_ids: np.ndarray, domain_index: int, split: str,
                          num_classes: int, labels_known: bool) -> list:
    """What is wrong with a shard's labels and image ids for its domain, split and class count."""
    if labels_known:
        problems = _first((labels < 0) | (labels >= num_classes), f"labels outside 0..{num_classes - 1}", labels,
                          "label")
    else:
        problems = _first(labels != -1, "labels not -1 although the split has no labels", labels, "label")
    split_offset = domain_index * ID_DOMAIN_FACTOR + SPLIT_INDEX[split] * ID_SPLIT_FACTOR
    problems += _first((image_ids // ID_DOMAIN_FACTOR != domain_index) | (image_ids - split_offset < 1),
                       "image_ids break d*10**7 + s*10**5 + k", image_ids, "id")
    if len(np.unique(image_ids)) != len(image_ids):
        problems.append("duplicate image_ids")
    return problems


def _read_verified(root: Path) -> dict:
    try:
        verified = json.loads((root / VERIFIED_FILE).read_text())
    except (OSError, ValueError):   # none yet, or unreadable: everything is checked again
        return {}
    return verified if isinstance(verified, dict) else {}


def _remember(root: Path, passed: dict) -> None:
    verified = _read_verified(root)   # read again: another job may have added entries meanwhile
    verified.update(passed)
    try:
        write_bytes_atomic(root / VERIFIED_FILE, json.dumps(verified, indent=1, sort_keys=True))
    except OSError:   # a read-only data folder: the shards are checked again next time
        pass


def _check_shard(root: Path, record: dict, where: str, domain_index: int, split: str, entry: dict,
                 num_classes: int) -> None:
    path = root / record["file"]
    digest = sha256_file(path)
    if digest != record.get("sha256"):
        raise ShardError(f"{path}: sha256 is {digest}, {root / MANIFEST_NAME} says {record.get('sha256')}: the "
                         f"file changed after it was prepared (see `python -m data_prep verify {root}`); "
                         f"{PREPARE_HINT}")
    try:
        with h5py.File(path, "r") as f:
            labels, image_ids = f["labels"][:], f["image_ids"][:]
    except (OSError, KeyError) as err:
        raise ShardError(f"{path}: not a readable shard ({err}); {PREPARE_HINT}") from None
    problems = label_and_id_problems(labels, image_ids, domain_index, split, num_classes, entry["labels_known"])
    if problems:
        raise ShardError(f"{path}: {'; '.join(problems)} ({where}: num_classes {num_classes} in "
                         f"{root / MANIFEST_NAME}); {PREPARE_HINT}")


def verify_split_shards(root, manifest: dict, domain: str, splits) -> None:
    """Raise ShardError naming the first shard of `domain`'s `splits` that is not what the
    manifest says (see the module docstring); shards that passed before are skipped."""
    root = Path(root)
    num_classes, domain_index = manifest["domains"][domain]["num_classes"], get_domain(domain).index
    verified, passed = _read_verified(root), {}
    for split in splits:
        entry = split_entry(manifest, root, domain, split)
        for record in entry["shards"]:
            path = root / record["file"]
            try:
                stat = path.stat()
            except OSError:
                raise ShardError(f"{path}: shard listed in {root / MANIFEST_NAME} is missing; {PREPARE_HINT}") from None
            key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": record.get("sha256"),
                   "num_classes": num_classes, "labels_known": entry["labels_known"]}
            if verified.get(record["file"]) != key:
                _check_shard(root, record, f"{domain}/{split}", domain_index, split, entry, num_classes)
                passed[record["file"]] = key
    if passed:
        _remember(root, passed)
