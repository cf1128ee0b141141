"""The shard files of one split (or several splits read as one), checked against the
manifest, with their small datasets in memory and their pixels read by plain reads.

Shards store `pixels` uncompressed and contiguous (schema in decathlon.data.manifest), so
the pixels of any run of consecutive images are one byte range of the file: they are
read with one seek + readinto into the caller's buffer (which releases the GIL, unlike
h5py), at the byte offset HDF5 reports for the dataset. Everything else (offsets, shapes,
labels, image_ids) is read with h5py once, when the split is opened, and checked.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from decathlon.data.manifest import MANIFEST_NAME, ManifestError, read_manifest, split_entry

PREPARE_HINT = "run `make prepare-data`"


class ShardError(ManifestError):
    """A shard file that is missing or not what the manifest says it is."""


def offsets_problems(offsets: np.ndarray, shapes: np.ndarray, num_pixels: int) -> list:
    """What is wrong with a shard's offsets against its shapes and its pixel count P."""
    steps = np.diff(offsets)
    problems = [] if offsets[0] == 0 else [f"offsets[0] is {offsets[0]}, expected 0"]
    for mask, what, show in (
            (steps <= 0, "offsets do not increase", lambda i: f"offsets {offsets[i]} -> {offsets[i + 1]}"),
            (steps != shapes[:, 0] * shapes[:, 1], "images whose offsets span differs from height * width",
             lambda i: f"span {steps[i]}, shape {shapes[i, 0]}x{shapes[i, 1]}")):
        bad = np.flatnonzero(mask)
        if len(bad):
            problems.append(f"{len(bad)} {what} (first: row {bad[0]}, {show(bad[0])})")
    if offsets[-1] != num_pixels:
        problems.append(f"offsets[{len(steps)}] is {offsets[-1]} but dataset 'pixels' holds {num_pixels} pixels")
    return problems


class SplitShards:
    """The first `max_images` images (all by default) of the listed splits, in manifest order.

    Global image k of the split lives in shard `shard_of(k)`; its pixels are
    [offsets[k], offsets[k + 1]) of the concatenation of the shards' pixel buffers.
    """

    def __init__(self, root, domain: str, splits: tuple, max_images: int | None = None):
        self.root, self.domain, self.splits = Path(root), domain, tuple(splits)
        manifest, records = read_manifest(self.root), []
        for split in self.splits:
            try:
                entry = split_entry(manifest, self.root, domain, split)
            except ManifestError as err:
                raise ManifestError(f"{err}; {PREPARE_HINT}") from None
            if sum(shard["num_images"] for shard in entry["shards"]) != entry["num_images"]:
                raise ShardError(f"{self.root / MANIFEST_NAME}: the shards of {domain}/{split} do not add "
                                 f"up to its num_images ({entry['num_images']}); {PREPARE_HINT}")
            records += entry["shards"]
        listed = sum(record["num_images"] for record in records)
        wanted = listed if max_images is None else min(max_images, listed)
        if wanted < 1:
            raise ShardError(f"{self.root / MANIFEST_NAME}: {domain}/{'+'.join(self.splits)}: no images to load")
        self.paths, self.pixel_bytes, counts, parts = [], [], [], []
        for record in records:
            if sum(counts) == wanted:
                break
            take = min(record["num_images"], wanted - sum(counts))
            parts.append(self._open_shard(self.root / record["file"], record, take))
            counts.append(take)
        labels, image_ids, shapes, offsets = (list(column) for column in zip(*parts))
        self.labels, self.image_ids = np.concatenate(labels), np.concatenate(image_ids)
        self.shapes = np.concatenate(shapes)
        self.first_image = np.concatenate([[0], np.cumsum(counts)])
        self.first_pixel = np.concatenate([[0], np.cumsum([part[-1] for part in offsets])])
        self.offsets = np.concatenate([base + part[:-1] for base, part in zip(self.first_pixel, offsets)]
                                      + [self.first_pixel[-1:]])

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_pixels(self) -> int:
        return int(self.offsets[-1])

    def _open_shard(self, path: Path, record: dict, take: int) -> tuple:
        """Check one shard against its record; (labels, image_ids, shapes, offsets) of its first `take` images."""
        if not path.is_file():
            raise ShardError(f"{path}: shard listed in {self.root / MANIFEST_NAME} is missing; {PREPARE_HINT}")
        count, num_pixels = record["num_images"], record.get("num_pixels")
        if not isinstance(num_pixels, int):
            raise ShardError(f"{self.root / MANIFEST_NAME}: the record of {record['file']} has no integer "
                             f"'num_pixels' (found {num_pixels!r}); {PREPARE_HINT}")
        try:
            with h5py.File(path, "r") as f:
                for name, dtype, shape in (("pixels", np.uint8, (num_pixels, 3)), ("offsets", np.int64, (count + 1,)),
                                           ("shapes", np.int64, (count, 2)), ("labels", np.int64, (count,)),
                                           ("image_ids", np.int64, (count,))):
                    _check_dataset(f, path, name, dtype, shape)
                pixels = f["pixels"]
                byte_offset = pixels.id.get_offset()
                if pixels.id.get_create_plist().get_layout() != h5py.h5d.CONTIGUOUS or byte_offset is None:
                    raise ShardError(f"{path}: dataset 'pixels' is not stored contiguously; {PREPARE_HINT}")
                offsets, shapes = f["offsets"][:], f["shapes"][:]
                labels, image_ids = f["labels"][:take], f["image_ids"][:take]
        except OSError as err:
            raise ShardError(f"{path}: not a readable HDF5 shard ({err}); {PREPARE_HINT}") from None
        problems = offsets_problems(offsets, shapes, num_pixels)
        if problems:
            raise ShardError(f"{path}: {'; '.join(problems)}; {PREPARE_HINT}")
        self.paths.append(path)
        self.pixel_bytes.append(byte_offset)
        return labels, image_ids, shapes[:take], offsets[:take + 1]

    def shard_of(self, images: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.first_image, images, side="right") - 1

    def open(self) -> OpenFiles:
        return OpenFiles(self.paths)

    def read(self, files: OpenFiles, shard: int, first: int, stop: int, out: np.ndarray) -> None:
        """Read the pixels of images [first, stop) (global indices, all in `shard`) into the
        uint8 (offsets[stop] - offsets[first], 3) array `out`: one plain read."""
        begin = self.pixel_bytes[shard] + 3 * int(self.offsets[first] - self.first_pixel[shard])
        files.read_into(shard, begin, memoryview(out).cast("B"))

    def load(self, device: torch.device) -> torch.Tensor:
        """Every pixel of the split as one uint8 (P, 3) tensor on `device`, read shard by shard."""
        pixels = torch.empty((self.num_pixels, 3), dtype=torch.uint8, device=device)
        with self.open() as files:
            for shard in range(len(self.paths)):
                first, stop = self.first_image[shard], self.first_image[shard + 1]
                begin, end = self.offsets[first], self.offsets[stop]
                if pixels.device.type == "cpu":
                    self.read(files, shard, first, stop, pixels[begin:end].numpy())
                else:
                    staging = np.empty((end - begin, 3), np.uint8)
                    self.read(files, shard, first, stop, staging)
                    pixels[begin:end].copy_(torch.from_numpy(staging))
        return pixels


def _check_dataset(f: h5py.File, path: Path, name: str, dtype, shape: tuple) -> None:
    if name not in f:
        raise ShardError(f"{path}: dataset {name!r} is missing; {PREPARE_HINT}")
    found = f[name]
    if found.dtype != dtype or found.shape != shape:
        raise ShardError(f"{path}: dataset {name!r} is {found.dtype} {found.shape}, the manifest implies "
                         f"{np.dtype(dtype)} {shape}; {PREPARE_HINT}")


class OpenFiles(dict):
    """Shard files, opened unbuffered on first use by the thread that reads them, closed together."""

    def __init__(self, paths: list):
        super().__init__()
        self._paths = paths

    def __missing__(self, shard: int):
        self[shard] = open(self._paths[shard], "rb", buffering=0)
        return self[shard]

    def read_into(self, shard: int, begin: int, view: memoryview) -> None:
        file = self[shard]
        file.seek(begin)
        done = 0
        while done < len(view):  # one read, unless the OS returns less (over 2 GiB on Linux)
            got = file.readinto(view[done:])
            if not got:
                raise ShardError(f"{self._paths[shard]}: file ends {len(view) - done} bytes early; {PREPARE_HINT}")
            done += got

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for file in self.values():
            file.close()
