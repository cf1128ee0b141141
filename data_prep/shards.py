"""One shard file: create it under a temporary name, fill its image slots, finalise, check.

`<out>/<domain>/<split>-NNNNN.h5` holds annotation positions [i*S, i*S + n) of a split as
whole images in one flat pixel buffer (schema in decathlon.data.manifest):
    pixels     uint8 (P, 3)     every image row-major, one after another, annotation order
    offsets    int64 (n + 1,)   image k is pixels[offsets[k]:offsets[k + 1]]
    shapes     int64 (n, 2)     (height, width) of image k, shorter side 72
    labels     int64 (n,)       0-based class, -1 where the split has no labels
    image_ids  int64 (n,)       official image ids, annotation order
    attrs      domain, split, shard_index, first_position (annotation position of row 0)

Every dataset is uncompressed with contiguous layout: decoded pixels barely compress
losslessly, decompression would cost the 2-core trainer CPU every epoch, and a
contiguous dataset makes a run of consecutive images one plain read (the loader reads
chunks of consecutive images) instead of a chunk-index walk. The stored size of every
image follows from its annotation (data_prep.decode.stored_shapes), so the preparer
allocates the pixel buffer when the file is created and writes each decoded image
straight to its byte offset, in whatever order a tarball delivers them: the file's
bytes do not depend on that order, so a folder and a tarball give identical shards.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from decathlon.data.domains import SHORT_SIDE
from decathlon.data import Domain, label_and_id_problems
from decathlon.data.shard_files import offsets_problems
from decathlon.files import sha256_file
from data_prep.errors import PrepareError
from data_prep.owned_files import temporary_name


def shard_file(domain: str, split: str, index: int) -> str:
    """A shard's path relative to the output folder, as the manifest records it."""
    return f"{domain}/{split}-{index:05d}.h5"


def shard_ranges(num_images: int, shard_size: int) -> list:
    """[(first position, count)] of each shard of a split of `num_images` images."""
    return [(start, min(shard_size, num_images - start)) for start in range(0, num_images, shard_size)]


def pixel_offsets(shapes: np.ndarray) -> np.ndarray:
    """(n + 1,) int64 cumulative pixel offsets of images of (n, 2) shapes laid end to end."""
    return np.concatenate([[0], np.cumsum(np.prod(shapes, axis=1, dtype=np.int64))]).astype(np.int64)


class ShardWriter:
    """A preallocated temporary shard whose image slots are filled in any order."""

    def __init__(self, out: Path, domain: Domain, split: str, index: int, first_position: int,
                 image_ids: np.ndarray, labels: np.ndarray, shapes: np.ndarray, run: str):
        """`run`: the token of this run that its split's progress file records."""
        self.domain, self.split, self.index = domain, split, index
        self.file = shard_file(domain.name, split, index)
        self.path = Path(out) / self.file
        self.tmp_path = temporary_name(self.path, run)
        self.num_images, self.filled = len(image_ids), 0
        self.shapes, self.offsets = np.asarray(shapes, np.int64), pixel_offsets(np.asarray(shapes, np.int64))
        self.num_pixels = int(self.offsets[-1])
        self.tmp_path.parent.mkdir(parents=True, exist_ok=True)
        layout = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        layout.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)   # the offset exists before any write
        layout.set_fill_time(h5py.h5d.FILL_TIME_NEVER)     # every pixel is written exactly once
        created = False
        try:
            with h5py.File(self.tmp_path, "x") as f:  # "x": never over a file that is there already
                created = True
                pixels = f.create_dataset("pixels", (self.num_pixels, 3), np.uint8, dcpl=layout)
                f.create_dataset("offsets", data=self.offsets)
                f.create_dataset("shapes", data=self.shapes)
                f.create_dataset("labels", data=np.asarray(labels, np.int64))
                f.create_dataset("image_ids", data=np.asarray(image_ids, np.int64))
                f.attrs.update(domain=domain.name, split=split, shard_index=index, first_position=first_position)
                self._pixels_offset = pixels.id.get_offset()
            self._fd = os.open(self.tmp_path, os.O_RDWR)
        except BaseException:
            if created:
                self.tmp_path.unlink(missing_ok=True)
            raise

    def write(self, slot: int, image: np.ndarray) -> None:
        """Put one (H, W, 3) uint8 image in slot `slot`; each slot is written once."""
        expected = (*map(int, self.shapes[slot]), 3)
        if image.shape != expected or image.dtype != np.uint8:
            raise PrepareError(f"{self.tmp_path}: image {slot} is {image.dtype} {image.shape}, "
                               f"expected uint8 {expected}")
        where = self._pixels_offset + int(self.offsets[slot]) * 3
        written = os.pwrite(self._fd, np.ascontiguousarray(image).data, where)
        if written != image.nbytes:
            raise OSError(f"{self.tmp_path}: short write of image {slot} ({written} of {image.nbytes} bytes)")
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
                                  self.num_pixels, num_classes, labels_known)
        if problems:
            raise PrepareError(f"{self.tmp_path}: written shard fails its own check: {'; '.join(problems)}")
        sha256 = sha256_file(self.tmp_path)
        os.replace(self.tmp_path, self.path)
        return {"file": self.file, "num_images": self.num_images, "num_pixels": self.num_pixels, "sha256": sha256}

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


def _rows(mask: np.ndarray, what: str, show) -> list:
    """One problem line for the rows where `mask` holds: how many, and the first of them."""
    bad = np.flatnonzero(mask)
    return [f"{len(bad)} {what} (first: row {bad[0]}, {show(bad[0])})"] if len(bad) else []


def geometry_problems(offsets: np.ndarray, shapes: np.ndarray, num_pixels: int, domain: Domain) -> list:
    """What is wrong with a shard's offsets and shapes against each other, P and the stored geometry."""
    heights, widths = shapes[:, 0], shapes[:, 1]
    problems = offsets_problems(offsets, shapes, num_pixels)
    problems += _rows(np.minimum(heights, widths) != SHORT_SIDE, f"images whose shorter side is not {SHORT_SIDE}",
                      lambda i: f"shape {heights[i]}x{widths[i]}")
    if domain.image_hw is not None:
        h, w = domain.image_hw
        problems += _rows((heights != h) | (widths != w), f"images not {h}x{w} (HxW) like every {domain.name} image",
                          lambda i: f"shape {heights[i]}x{widths[i]}")
    return problems


def check_shard(path: Path, domain: Domain, split: str, index: int, num_images: int, num_pixels: int,
                num_classes: int, labels_known: bool) -> tuple:
    """(problems, image_ids) of one shard file against what the manifest says it holds."""
    try:
        with h5py.File(path, "r") as f:
            problems = _check_dataset(f, "pixels", np.uint8, (num_pixels, 3))
            problems += _check_dataset(f, "offsets", np.int64, (num_images + 1,))
            problems += _check_dataset(f, "shapes", np.int64, (num_images, 2))
            problems += _check_dataset(f, "labels", np.int64, (num_images,))
            problems += _check_dataset(f, "image_ids", np.int64, (num_images,))
            if problems:
                return problems, None
            attrs = {key: f.attrs.get(key) for key in ("domain", "split", "shard_index")}
            offsets, shapes = f["offsets"][:], f["shapes"][:]
            labels, image_ids = f["labels"][:], f["image_ids"][:]
    except OSError as err:
        return [f"cannot be read as HDF5 ({err})"], None
    expected = {"domain": domain.name, "split": split, "shard_index": index}
    if attrs != expected:
        problems.append(f"attrs are {attrs}, expected {expected}")
    problems += geometry_problems(offsets, shapes, num_pixels, domain)
    problems += label_and_id_problems(labels, image_ids, domain.index, split, num_classes, labels_known)
    return problems, image_ids
