"""What in an output folder preparation wrote, and may therefore replace or delete.

Preparation deletes a file only when its own records name it:
  * a shard `<domain>/<split>-NNNNN.h5` that the manifest (of any format version) or the
    split's progress file lists, including the shards a progress file lists as `stale`
    (made from other input, to be removed once the manifest no longer lists them);
  * an unfinished shard `<domain>/<split>-NNNNN.h5.<run>.tmp`, where <run> is the random
    token the split's progress file recorded before that run created any temporary;
  * a split's progress file, once the split is complete in the manifest;
  * a temporary of its own atomic writes, `.manifest.json.XXXXXXXX.tmp` or
    `<domain>/.<split>.progress.json.XXXXXXXX.tmp`, a name only that writer makes (left only
    when a run is killed within the write).
A shard-named file that no record lists, or a progress file that preparation did not write,
makes preparation refuse the folder, naming the file; every other file is left alone.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from decathlon.data import MANIFEST_NAME, SPLITS
from data_prep.errors import PrepareError

TMP_SUFFIX = ".tmp"
# decathlon.files.atomic_path names its temporary `.<target>.<8 characters of mkstemp>.tmp`.
_RECORD_NAMES = "|".join(re.escape(name) for name in
                         [MANIFEST_NAME, *(f"{split}.progress.json" for split in SPLITS)])
_RECORD_TEMPORARY = re.compile(rf"^\.(?:{_RECORD_NAMES})\.[a-z0-9_]{{8}}\.tmp$")


def progress_path(out: Path, domain: str, split: str) -> Path:
    return Path(out) / domain / f"{split}.progress.json"


def shard_name_pattern(domain: str, split: str) -> re.Pattern:
    """The names preparation gives a split's shards, relative to the output folder."""
    return re.compile(rf"^{re.escape(domain)}/{split}-\d{{5}}\.h5$")


def temporary_name(path: Path, run: str) -> Path:
    """The unfinished form of shard `path` in the run recorded as `run`."""
    return path.with_name(f"{path.name}.{run}{TMP_SUFFIX}")


def _parse_progress(path: Path):
    """The progress file as preparation writes it, or None for anything else."""
    try:
        journal = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(journal, dict) or "fingerprint" not in journal or not isinstance(journal.get("shards"), dict):
        return None
    if not all(key.isdigit() and isinstance(record, dict) for key, record in journal["shards"].items()):
        return None
    if not isinstance(journal.get("stale", []), list) or not isinstance(journal.get("run", ""), str):
        return None
    return journal


def read_progress(out: Path, domain: str, split: str) -> dict | None:
    """The split's progress file (None when there is none); a file of that name that
    preparation did not write is refused, not overwritten."""
    path = progress_path(out, domain, split)
    if not path.exists():
        return None
    journal = _parse_progress(path)
    if journal is None:
        raise PrepareError(f"{path}: not a progress file that preparation wrote (a JSON object with "
                           f"'fingerprint' and 'shards'); preparing {domain}/{split} would replace it: move it "
                           f"out of {Path(out)}, or prepare into another --out")
    return journal


def recorded_in_manifest(manifest: dict) -> dict:
    """{(domain, split): {shard file}} that a manifest of any format version lists."""
    recorded = {}
    domains = manifest.get("domains")
    for domain, entry in (domains.items() if isinstance(domains, dict) else ()):
        splits = entry.get("splits") if isinstance(entry, dict) else None
        for split, split_entry in (splits.items() if isinstance(splits, dict) else ()):
            shards = split_entry.get("shards") if isinstance(split_entry, dict) else None
            recorded[(domain, split)] = {shard["file"] for shard in (shards if isinstance(shards, list) else ())
                                         if isinstance(shard, dict) and isinstance(shard.get("file"), str)}
    return recorded


def owned_shards(out: Path, domain: str, split: str, in_manifest: set, journal: dict | None) -> set:
    """Every shard file of the split that the records list, under one of preparation's names."""
    files = set(in_manifest)
    if journal is not None:
        files |= {record.get("file") for record in journal["shards"].values()}
        files |= set(journal.get("stale", []))
    pattern = shard_name_pattern(domain, split)
    return {file for file in files if isinstance(file, str) and pattern.match(file)}


def refuse_unrecorded_shards(out: Path, domain: str, split: str, owned: set) -> None:
    """Refuse to prepare the split while a file under one of its shard names is not ours."""
    pattern = shard_name_pattern(domain, split)
    folder = Path(out) / domain
    on_disk = sorted(f"{domain}/{path.name}" for path in folder.glob(f"{split}-*.h5") if path.is_file())
    unrecorded = [file for file in on_disk if pattern.match(file) and file not in owned]
    if unrecorded:
        more = f" (and {len(unrecorded) - 1} more)" if len(unrecorded) > 1 else ""
        raise PrepareError(f"{Path(out) / unrecorded[0]}{more}: neither {Path(out) / MANIFEST_NAME} nor "
                           f"{progress_path(out, domain, split)} lists this file, so preparation did not write "
                           f"it, and preparing {domain}/{split} would replace or delete it; move it out of "
                           f"{Path(out)}, or prepare into another --out")


def remove_own_temporaries(out: Path, domains) -> list:
    """Delete the temporaries that the records say earlier runs left, in the output folder and
    in the folders of `domains`; return their paths."""
    out, removed = Path(out), []
    for folder in [out, *(out / domain for domain in sorted(domains))]:
        removed += [path for path in folder.glob(f".*{TMP_SUFFIX}") if _RECORD_TEMPORARY.match(path.name)]
    for domain in sorted(domains):
        for split in SPLITS:
            path = progress_path(out, domain, split)
            journal = _parse_progress(path) if path.exists() else None
            run = journal.get("run") if journal else None
            if run:
                pattern = re.compile(rf"^{split}-\d{{5}}\.h5\.{re.escape(run)}{re.escape(TMP_SUFFIX)}$")
                removed += [p for p in (out / domain).glob(f"{split}-*{TMP_SUFFIX}") if pattern.match(p.name)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
