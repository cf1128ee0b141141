"""Re-check a prepared folder against its manifest (`python -m data_prep verify OUT`).

Every shard's sha256, image and pixel counts, dataset shapes and dtypes, offsets (they
must increase by height * width of each image and end at the pixel count), stored
geometry (shorter side 72; the fixed size of domains whose images all share one), attrs,
label range and image-id scheme are checked against the manifest and the domain
registry; nothing is trusted from an earlier run. The folder must also hold a finished
preparation: every domain of the manifest has all three splits, and nothing is left of an
interrupted run (no `*.tmp`, no progress file, no `*.h5` the manifest does not list).
The lock file `.lock` is the preparation's own and passes. Every problem is listed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from decathlon.data.domains import SHORT_SIDE
from decathlon.data import DOMAINS, MANIFEST_NAME, SPLITS, get_domain, read_manifest
from data_prep.owned_files import TMP_SUFFIX, recorded_in_manifest
from data_prep.shards import check_shard, shard_file
from decathlon.files import sha256_file


@dataclass
class VerifyReport:
    checked: list = field(default_factory=list)   # one line per split that was checked
    problems: list = field(default_factory=list)  # one line per mismatch

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(out: Path) -> VerifyReport:
    """Check `out` against `out/manifest.json`; ManifestError if the manifest is unusable."""
    out = Path(out)
    manifest, report = read_manifest(out), VerifyReport()
    for name, entry in manifest["domains"].items():
        if name not in DOMAINS:
            report.problems.append(f"{out / MANIFEST_NAME}: unknown domain {name!r}")
            continue
        domain = get_domain(name)
        where = f"{out / MANIFEST_NAME}: {name}"
        if entry.get("index") != domain.index or entry.get("short_side") != SHORT_SIDE:
            report.problems.append(f"{where}: index/short_side are {entry.get('index')}/{entry.get('short_side')}, "
                                   f"expected {domain.index}/{SHORT_SIDE}")
        num_classes = entry.get("num_classes")
        if not isinstance(num_classes, int) or not 0 < num_classes <= domain.num_classes \
                or len(entry.get("class_names", [])) != num_classes:
            report.problems.append(f"{where}: num_classes {num_classes!r} must be 1..{domain.num_classes} "
                                   f"and match the {len(entry.get('class_names', []))} class_names")
            continue
        for split, split_entry in entry.get("splits", {}).items():
            try:
                _verify_split(out, domain, split, split_entry, num_classes, report)
            except (KeyError, TypeError, AttributeError) as err:
                report.problems.append(f"{where}/{split}: malformed manifest entry ({type(err).__name__}: {err})")
    report.problems += unfinished(out, manifest)
    return report


def unfinished(out: Path, manifest: dict) -> list:
    """What a preparation that did not finish leaves: domains without all their splits, and
    temporaries, progress files and shards that the manifest does not list."""
    problems = []
    for name, entry in manifest["domains"].items():
        splits = entry.get("splits") if isinstance(entry, dict) else None
        missing = [split for split in SPLITS if not isinstance(splits, dict) or split not in splits]
        if missing:
            problems.append(f"{out / MANIFEST_NAME}: {name}: incomplete, "
                            f"{'split' if len(missing) == 1 else 'splits'} {', '.join(missing)} not prepared; "
                            f"run the preparation of {name} again to finish it")
    listed = set().union(*recorded_in_manifest(manifest).values())
    for path in sorted([*out.glob(f"*{TMP_SUFFIX}"), *out.glob(f"*/*{TMP_SUFFIX}")]):
        problems.append(f"{path}: temporary file, left by an interrupted run")
    for path in sorted(out.glob("*/*.progress.json")):
        problems.append(f"{path}: progress file of an unfinished preparation")
    for path in sorted(out.glob("*/*.h5")):
        if path.relative_to(out).as_posix() not in listed:
            problems.append(f"{path}: not listed in {out / MANIFEST_NAME}")
    return problems


def _verify_split(out: Path, domain, split: str, entry: dict, num_classes: int, report: VerifyReport) -> None:
    where = f"{domain.name}/{split}"
    shards, problems_before = entry["shards"], len(report.problems)
    counted = sum(shard["num_images"] for shard in shards)
    if counted != entry["num_images"]:
        report.problems.append(f"{where}: shards hold {counted} images but num_images is {entry['num_images']}")
    all_ids = []
    for index, shard in enumerate(shards):
        path = out / shard["file"]
        if shard["file"] != shard_file(domain.name, split, index):
            report.problems.append(f"{where}: shard {index} is {shard['file']}, "
                                   f"expected {shard_file(domain.name, split, index)}")
        if not path.is_file():
            report.problems.append(f"{path}: missing")
            continue
        digest = sha256_file(path)
        if digest != shard["sha256"]:
            report.problems.append(f"{path}: sha256 is {digest}, manifest says {shard['sha256']}")
        problems, image_ids = check_shard(path, domain, split, index, shard["num_images"], shard["num_pixels"],
                                          num_classes, entry["labels_known"])
        report.problems += [f"{path}: {problem}" for problem in problems]
        if image_ids is not None:
            all_ids.append(image_ids)
    if all_ids and len(np.unique(np.concatenate(all_ids))) != sum(map(len, all_ids)):
        report.problems.append(f"{where}: the same image_id appears in more than one shard")
    status = "ok" if len(report.problems) == problems_before else "MISMATCH"
    labels = "labelled" if entry["labels_known"] else "no labels"
    report.checked.append(f"{status:8} {where}: {entry['num_images']} images in {len(shards)} shards ({labels})")
