"""One shard file: create it under a temporary name, fill its image slots, finalise, check.

`<out>/<domain>/<split>-NNNNN.h5` holds annotation positions [i*S, i*S + n) of a split:
    images     uint8 (n, H, W, 3)   RGB, stored geometry (see data_prep.decode)
    labels     int64 (n,)           0-based class, -1 where the split has no labels
    image_ids  int64 (n,)           official image ids, annotation order
    attrs      domain, split, shard_index, first_position (annotation position of row 0)

Every dataset is uncompressed with contiguous layout: decoded pixels barely compress
losslessly, decompression would cost the 2-core trainer CPU every epoch, and a
contiguous dataset makes a run of consecutive images one plain read (the loader reads
chunks of consecutive images) instead of a chunk-index walk. It also lets the preparer
allocate the images dataset when the file is created and then write each decoded
image straight to its byte offset, in whatever order a tarball delivers them: the
file's bytes do not depend on that order, so a folder and a tarball give identical shards.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np

from decathlon.data.domains import ID_DOMAIN_FACTOR, ID_SPLIT_FACTOR, SPLIT_INDEX, Domain
from data_prep.errors import PrepareError

TMP_SUFFIX = ".tmp"


def shard_file(domain: str, split: str, index: int) -> str:
    """A shard's path relative to the output folder, as the manifest records it."""
    return f"{domain}/{split}-{index:05d}.h5"


def shard_ranges(num_images: int, shard_size: int) -> list:
    """[(first position, count)] of each shard of a split of `num_images` images."""
    return [(start, min(shard_size, num_images - start)) for start in range(0, num_images, shard_size)]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**22), b""):
            digest.update(block)
    return digest.hexdigest()


class ShardWriter:
    """A preallocated temporary shard whose image slots are filled in any order."""

    def __init__(self, out: Path, domain: Domain, split: str, index: int, first_position: int,
                 image_ids: np.ndarray, labels: np.ndarray):
        self.domain, self.split, self.index = domain, split, index
        self.file = shard_file(domain.name, split, index)
        self.path = Path(out) / self.file
        self.tmp_path = self.path.with_name(self.path.name + TMP_SUFFIX)
        self.num_images, self.filled = len(image_ids), 0
        self.image_shape = (*domain.stored_hw, 3)
        self.tmp_path.parent.mkdir(parents=True, exist_ok=True)
        layout = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        layout.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)   # the offset exists before any write
        layout.set_fill_time(h5py.h5d.FILL_TIME_NEVER)     # every slot is written exactly once
        try:
            with h5py.File(self.tmp_path, "w") as f:
                images = f.create_dataset("images", (self.num_images, *self.image_shape), np.uint8, dcpl=layout)
                f.create_dataset("labels", data=np.asarray(labels, np.int64))
                f.create_dataset("image_ids", data=np.asarray(image_ids, np.int64))
                f.attrs.update(domain=domain.name, split=split, shard_index=index, first_position=first_position)
                self._images_offset = images.id.get_offset()
            self._fd = os.open(self.tmp_path, os.O_RDWR)
        except BaseException:
            self.tmp_path.unlink(missing_ok=True)
            raise

    def write(self, slot: int, image: np.ndarray) -> None:
        """Put one (H, W, 3) uint8 image in row `slot`; each row is written once."""
        if image.shape != self.image_shape or image.dtype != np.uint8:
            raise PrepareError(f"{self.tmp_path}: row {slot} got {image.dtype} {image.shape}, "
                               f"expected uint8 {self.image_shape}")
        written = os.pwrite(self._fd, np.ascontiguousarray(image).data, self._images_offset + slot * image.nbytes)
        if written != image.nbytes:
            raise OSError(f"{self.tmp_path}: short write of row {slot} ({written} of {image.nbytes} bytes)")
        self.filled += 1

    @property
    def complete(self) -> bool:
        return self.filled == self.num_images

    def finalise(self, num_classes: int, labels_known: bool) -> dict:
        """Flush, hash, check, rename to the final name; return the manifest's shard record."""
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        problems, _ = check_shard(self.tmp_path, self.domain, self.split, self.index, self.num_images,
                                  num_classes, labels_known)
        if problems:
            raise PrepareError(f"{self.tmp_path}: written shard fails its own check: {'; '.join(problems)}")
        sha256 = sha256_file(self.tmp_path)
        os.replace(self.tmp_path, self.path)
        return {"file": self.file, "num_images": self.num_images, "sha256": sha256}

    def discard(self) -> None:
        """Drop an unfinished shard (on error or interruption)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.tmp_path.unlink(missing_ok=True)


def _check_dataset(f: h5py.File, name: str, dtype, shape: tuple) -> list:
    if name not in f or not isinstance(f[name], h5py.Dataset):
        return [f"dataset '{name}' missing"]
    ds = f[name]
    problems = []
    if ds.dtype != dtype or ds.shape != shape:
        problems.append(f"dataset '{name}' is {ds.dtype} {ds.shape}, expected {np.dtype(dtype)} {shape}")
    if ds.id.get_create_plist().get_layout() != h5py.h5d.CONTIGUOUS:
        problems.append(f"dataset '{name}' is not stored contiguously")
    return problems


def check_shard(path: Path, domain: Domain, split: str, index: int, num_images: int, num_classes: int,
                labels_known: bool) -> tuple:
    """(problems, image_ids) of one shard file against what the manifest says it holds."""
    try:
        with h5py.File(path, "r") as f:
            problems = _check_dataset(f, "images", np.uint8, (num_images, *domain.stored_hw, 3))
            problems += _check_dataset(f, "labels", np.int64, (num_images,))
            problems += _check_dataset(f, "image_ids", np.int64, (num_images,))
            if problems:
                return problems, None
            attrs = {key: f.attrs.get(key) for key in ("domain", "split", "shard_index")}
            labels, image_ids = f["labels"][:], f["image_ids"][:]
    except OSError as err:
        return [f"cannot be read as HDF5 ({err})"], None
    expected = {"domain": domain.name, "split": split, "shard_index": index}
    if attrs != expected:
        problems.append(f"attrs are {attrs}, expected {expected}")
    if labels_known:
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        what = f"outside 0..{num_classes - 1}"
    else:
        bad = np.flatnonzero(labels != -1)
        what = "not -1 although the split has no labels"
    if len(bad):
        problems.append(f"{len(bad)} labels {what} (first: row {bad[0]}, label {labels[bad[0]]})")
    split_offset = domain.index * ID_DOMAIN_FACTOR + SPLIT_INDEX[split] * ID_SPLIT_FACTOR
    bad = np.flatnonzero((image_ids // ID_DOMAIN_FACTOR != domain.index) | (image_ids - split_offset < 1))
    if len(bad):
        problems.append(f"{len(bad)} image_ids break d*10**7 + s*10**5 + k (first: row {bad[0]}, "
                        f"id {image_ids[bad[0]]})")
    if len(np.unique(image_ids)) != len(image_ids):
        problems.append("duplicate image_ids")
    return problems, image_ids
