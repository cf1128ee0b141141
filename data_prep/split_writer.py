"""Fill the shards of one split from decoded images that arrive in any order.

Shard i of a split holds annotation positions [i*S, (i+1)*S). A shard is written to a
temporary file and renamed once all its rows are filled. Until the whole split is done
it is not in the manifest; the finished shards are recorded in a progress file
`<out>/<domain>/<split>.progress.json` (rewritten atomically after each shard), so an
interrupted run resumes shard by shard. The progress file and the manifest both carry
what the shards were made from (annotation file and sha256, storage, shard sizes): a
shard is reused only when that matches and the file's sha256 equals its record. The
stored size of every image is known from the annotations before any image arrives.

The progress file is also preparation's record of what it owns (data_prep.owned_files):
it is written before the manifest drops the split, and lists the run's token (the
suffix of its temporaries) and the earlier shards to remove (`stale`), which are
deleted only after that.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from decathlon.data import SplitAnnotations
from decathlon.files import sha256_file, write_json_atomic
from data_prep.decode import STORAGE, stored_shapes
from data_prep.errors import PrepareError
from data_prep.owned_files import progress_path
from data_prep.shards import ShardWriter, shard_file, shard_ranges


@dataclass
class SplitPlan:
    """A split to (re)build: its annotations, the shards to reuse and the files of ours to remove."""
    ann: SplitAnnotations
    annotation_file: str
    reused: dict                                # {shard index: record}, verified
    stale: list = field(default_factory=list)   # shard files of earlier runs, not reused


def split_fingerprint(ann: SplitAnnotations, annotation_file: str, shard_size: int) -> dict:
    """What a split's shards are made from; shards made from anything else are rebuilt."""
    return {"annotation_file": annotation_file, "annotation_sha256": ann.sha256,
            "storage": STORAGE,
            "shard_counts": [count for _, count in shard_ranges(len(ann.image_ids), shard_size)]}


def manifest_fingerprint(domain_entry: dict, split_entry: dict) -> dict | None:
    """The same, read back from a manifest entry (None if the entry is malformed)."""
    try:
        return {"annotation_file": split_entry["annotation_file"],
                "annotation_sha256": split_entry["annotation_sha256"], "storage": domain_entry["storage"],
                "shard_counts": [shard["num_images"] for shard in split_entry["shards"]]}
    except (KeyError, TypeError):
        return None


def journal_records(journal: dict | None, fingerprint: dict) -> dict:
    """{shard index: record} from a progress file (data_prep.owned_files.read_progress), if it
    was made from the same input."""
    if journal is None or journal.get("fingerprint") != fingerprint:
        return {}
    return {int(index): record for index, record in journal["shards"].items()}


def verified_records(out: Path, domain: str, split: str, records: dict, counts: list) -> dict:
    """The records whose file is there under the expected name and hashes to the record."""
    def intact(index: int, record: dict) -> bool:
        file = shard_file(domain, split, index)
        return (index < len(counts) and record.get("file") == file and record.get("num_images") == counts[index]
                and isinstance(record.get("num_pixels"), int) and (Path(out) / file).is_file()
                and sha256_file(Path(out) / file) == record.get("sha256"))
    return {index: record for index, record in records.items() if isinstance(record, dict) and intact(index, record)}


class SplitWriter:
    """Routes decoded images of one split to their shards, finalising each when full."""

    def __init__(self, out: Path, plan: SplitPlan, shard_size: int, run: str):
        """Record the plan in the split's progress file: the manifest may drop the split after that."""
        ann = plan.ann
        self.out, self.ann, self.annotation_file, self.run = Path(out), ann, plan.annotation_file, run
        self.domain, self.split, self.shard_size = ann.domain, ann.split, shard_size
        self.fingerprint = split_fingerprint(ann, plan.annotation_file, shard_size)
        self.ranges = shard_ranges(len(ann.image_ids), shard_size)
        self.shapes = stored_shapes(ann.widths, ann.heights)
        self.records, self.reused, self.stale = dict(plan.reused), set(plan.reused), list(plan.stale)
        self._name_re = re.compile(rf"^data/{re.escape(self.domain.name)}/{self.split}/(\d{{6}})\.jpg$")
        numbers = np.asarray([int(self._name_re.match(name)[1]) for name in ann.file_names], np.int64)
        self._position_by_number = np.full(int(numbers.max()) + 1, -1, np.int64)
        self._position_by_number[numbers] = np.arange(len(numbers))
        self._dispatched = np.zeros(len(numbers), bool)
        for index in self.reused:
            start, count = self.ranges[index]
            self._dispatched[start:start + count] = True
        self._open = {}  # shard index -> ShardWriter
        self._save_progress()

    @property
    def done_images(self) -> int:
        return sum(self.ranges[index][1] for index in self.reused)

    def remove_stale_shards(self) -> None:
        """Delete the earlier shards the progress file lists as stale (once the manifest no longer lists them)."""
        for file in self.stale:
            (self.out / file).unlink(missing_ok=True)
        self.stale = []
        self._save_progress()

    def _save_progress(self) -> None:
        write_json_atomic(progress_path(self.out, self.domain.name, self.split),
                          {"fingerprint": self.fingerprint, "run": self.run, "stale": self.stale,
                           "shards": {str(i): record for i, record in sorted(self.records.items())}})

    def position_of(self, file_name: str) -> int:
        """Annotation position of an image file, -1 if the annotations do not list it."""
        match = self._name_re.match(file_name)
        number = int(match[1]) if match else len(self._position_by_number)
        return int(self._position_by_number[number]) if number < len(self._position_by_number) else -1

    def claim(self, position: int, origin: str) -> bool:
        """Whether the image at `position` must be decoded now (False: its shard is done)."""
        if position // self.shard_size in self.reused:
            return False
        if self._dispatched[position]:
            raise PrepareError(f"{origin}: seen twice; entry {self.entry(position)}")
        self._dispatched[position] = True
        return True

    def entry(self, position: int) -> str:
        return f"{self.ann.source}: {self.ann.entry(position)}"

    def write(self, position: int, image: np.ndarray) -> None:
        index = position // self.shard_size
        if index not in self._open:
            start, count = self.ranges[index]
            self._open[index] = ShardWriter(self.out, self.domain, self.split, index, start,
                                            self.ann.image_ids[start:start + count],
                                            self.ann.labels[start:start + count], self.shapes[start:start + count],
                                            self.run)
        shard = self._open[index]
        shard.write(position - index * self.shard_size, image)
        if shard.complete:
            self.records[index] = shard.finalise(len(self.ann.class_names), self.ann.labels_known)
            del self._open[index]
            self._save_progress()

    @property
    def complete(self) -> bool:
        return len(self.records) == len(self.ranges)

    def missing(self) -> np.ndarray:
        """Positions no image arrived for."""
        return np.flatnonzero(~self._dispatched)

    def manifest_entry(self) -> dict:
        """The split's manifest entry; call once complete (the progress file then goes)."""
        return {"num_images": len(self.ann.image_ids), "labels_known": self.ann.labels_known,
                "annotation_file": self.annotation_file, "annotation_sha256": self.ann.sha256,
                "shards": [self.records[index] for index in range(len(self.ranges))]}

    def remove_progress(self) -> None:
        progress_path(self.out, self.domain.name, self.split).unlink(missing_ok=True)

    def discard_open_shards(self) -> None:
        for shard in self._open.values():
            shard.discard()
        self._open.clear()
