"""A fast loader over one (domain, split) of prepared HDF5 shards, or several splits
read as one (the train+val protocol).

Why this is hand-written rather than a torch.utils.data.DataLoader: the public codes'
pipeline calls a per-sample `__getitem__` (open one JPEG, PIL decode, five PIL/tensor
transforms) in worker processes that pickle every sample back to the trainer. At 72 px
that per-image Python and inter-process overhead, not the arithmetic, is the cost. Here
one h5py read fetches a contiguous chunk of `chunk_size` stored uint8 images, a batch is
a numpy gather from those chunks, images stay uint8 until they are on `device`, and the
augmentation is one set of batched tensor ops there (decathlon.data.transforms). One background
thread reads ahead (h5py and numpy release the GIL while they copy).

The order of an epoch is a function of (seed, epoch) alone, so a resumed run replays it:
 1. the split is cut into chunks of `chunk_size` consecutive images of one shard;
 2. the chunk order is permuted, and runs of `shuffle_window_chunks` chunks form windows;
 3. the images inside each window are permuted (a bounded shuffle buffer: imagenet12
    streams without ever being loaded whole; only one window is in memory at a time).
With DDP every rank takes an equal, contiguous slice of that order, so each rank reads
only its own chunks. With drop_last the slices are disjoint and the last
`num_images % world_size` images of the epoch are skipped (others in the next epoch);
without it the order is padded from its start so that every image is seen, and the at
most world_size - 1 repeated images carry their image_ids, so an evaluator can drop them.
Splits no larger than CACHE_LIMIT_BYTES are read once into memory and kept.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from decathlon.data.domains import get_domain
from decathlon.data.manifest import MANIFEST_NAME, ManifestError, read_manifest, split_entry
from decathlon.data.prefetch import Prefetcher, rebatch
from decathlon.data.transforms import make_batch_transform

CACHE_LIMIT_BYTES = 512 * 2**20
PREPARE_HINT = "run `make prepare-data`"


class ShardError(ManifestError):
    """A shard file that is missing or not what the manifest says it is."""


class ShardLoader:
    """Iterate (images float NCHW on device, labels int64 on device, image_ids int64 on CPU).

    Call `set_epoch(e)` before each epoch: like DistributedSampler, the order changes only
    when the epoch does. Labels are -1 where the split has none (the stripped test split).
    """

    def __init__(self, root, domain: str, split: str | tuple, batch_size: int, *, train: bool, protocol: str,
                 shuffle: bool, seed: int, drop_last: bool, device, rank: int = 0, world_size: int = 1,
                 chunk_size: int = 256, prefetch: int = 2, max_images: int | None = None,
                 shuffle_window_chunks: int = 16, channels_last: bool = False):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        for name, value, least in (("batch_size", batch_size, 1), ("chunk_size", chunk_size, 1),
                                   ("shuffle_window_chunks", shuffle_window_chunks, 1), ("prefetch", prefetch, 0)):
            if value < least:
                raise ValueError(f"{name} must be at least {least}, got {value}")
        self.root, self.domain = Path(root), domain
        self.splits = (split,) if isinstance(split, str) else tuple(split)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.device = torch.device(device)
        self.rank, self.world_size, self.prefetch = rank, world_size, prefetch
        self.shuffle_window_chunks = shuffle_window_chunks
        self.transform = make_batch_transform(domain, protocol, train, channels_last)
        self.epoch, self.image_hw = 0, self._check_manifest()
        self._open_shards(max_images)
        self.num_images = len(self._image_ids)
        self._build_chunks(chunk_size)
        self._cacheable = self.num_images * self.image_hw[0] * self.image_hw[1] * 3 <= CACHE_LIMIT_BYTES
        self._cache = None

    def _check_manifest(self) -> tuple:
        manifest = read_manifest(self.root)
        self._shards = []
        for split in self.splits:
            try:
                entry = split_entry(manifest, self.root, self.domain, split)
            except ManifestError as err:
                raise ManifestError(f"{err}; {PREPARE_HINT}") from None
            if sum(shard["num_images"] for shard in entry["shards"]) != entry["num_images"]:
                raise ShardError(f"{self.root / MANIFEST_NAME}: the shards of {self.domain}/{split} do not add "
                                 f"up to its num_images ({entry['num_images']}); {PREPARE_HINT}")
            self._shards += entry["shards"]
        image_hw = tuple(manifest["domains"][self.domain]["image_hw"])
        if image_hw != get_domain(self.domain).stored_hw:
            raise ShardError(f"{self.root / MANIFEST_NAME}: {self.domain} images are stored {image_hw}, "
                             f"this code expects {get_domain(self.domain).stored_hw}; {PREPARE_HINT}")
        return image_hw

    def _open_shards(self, max_images: int | None) -> None:
        """Check each shard needed against the manifest; read all their labels and image_ids."""
        shards = self._shards
        listed = sum(shard["num_images"] for shard in shards)
        wanted = listed if max_images is None else min(max_images, listed)
        if wanted < 1:
            splits = "+".join(self.splits)
            raise ShardError(f"{self.root / MANIFEST_NAME}: {self.domain}/{splits}: no images to load")
        self._shard_paths, self._shard_counts, labels, image_ids = [], [], [], []
        for shard in shards:
            loaded = sum(self._shard_counts)
            if loaded == wanted:
                break
            path, count = self.root / shard["file"], shard["num_images"]
            if not path.is_file():
                raise ShardError(f"{path}: shard listed in {self.root / MANIFEST_NAME} is missing; {PREPARE_HINT}")
            take = min(count, wanted - loaded)
            try:
                with h5py.File(path, "r") as f:
                    _check_dataset(f, path, "images", np.uint8, (count, *self.image_hw, 3))
                    _check_dataset(f, path, "labels", np.int64, (count,))
                    _check_dataset(f, path, "image_ids", np.int64, (count,))
                    labels.append(f["labels"][:take])
                    image_ids.append(f["image_ids"][:take])
            except OSError as err:
                raise ShardError(f"{path}: not a readable HDF5 shard ({err}); {PREPARE_HINT}") from None
            self._shard_paths.append(path)
            self._shard_counts.append(take)
        self._labels, self._image_ids = np.concatenate(labels), np.concatenate(image_ids)

    def _build_chunks(self, chunk_size: int) -> None:
        """Chunk table: shard, offset in the shard, length and global index of each chunk."""
        shard_of, local_start, length = [], [], []
        for index, count in enumerate(self._shard_counts):
            for start in range(0, count, chunk_size):
                shard_of.append(index)
                local_start.append(start)
                length.append(min(chunk_size, count - start))
        self._chunk_shard, self._chunk_local = np.array(shard_of), np.array(local_start)
        self._chunk_length = np.array(length)
        self._chunk_first = np.concatenate([[0], np.cumsum(length)[:-1]])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_order(self, epoch: int):
        """Global image indices of one epoch (all ranks) and where each shuffle window starts."""
        rng = np.random.default_rng([self.seed, epoch])
        num_chunks = len(self._chunk_first)
        chunk_order = rng.permutation(num_chunks) if self.shuffle else np.arange(num_chunks)
        windows = []
        for start in range(0, num_chunks, self.shuffle_window_chunks):
            window = np.concatenate([np.arange(self._chunk_first[c], self._chunk_first[c] + self._chunk_length[c])
                                     for c in chunk_order[start:start + self.shuffle_window_chunks]])
            windows.append(rng.permutation(window) if self.shuffle else window)
        return np.concatenate(windows), np.cumsum([0] + [len(w) for w in windows])

    @property
    def images_per_rank(self) -> int:
        return self.num_images // self.world_size if self.drop_last else -(-self.num_images // self.world_size)

    def __len__(self) -> int:
        per_rank = self.images_per_rank
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def _rank_segments(self, epoch: int) -> list:
        """This rank's slice of the epoch, cut so that each piece lies inside one window."""
        order, window_starts = self.epoch_order(epoch)
        total = self.images_per_rank * self.world_size
        order = np.resize(order, total)  # drops the tail, or pads from the start
        begin, end = self.rank * self.images_per_rank, (self.rank + 1) * self.images_per_rank
        cuts = np.unique(np.clip(np.append(window_starts, total), begin, end))
        return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]

    def _read_images(self, indices: np.ndarray, shards: _OpenShards) -> np.ndarray:
        """uint8 images at global `indices`: one contiguous read per chunk touched, then a gather."""
        if self._cache is not None:
            return self._cache[indices]
        chunk_of = np.searchsorted(self._chunk_first, indices, side="right") - 1
        chunks, slot = np.unique(chunk_of, return_inverse=True)
        lengths = self._chunk_length[chunks]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        buffer = np.empty((lengths.sum(), *self.image_hw, 3), np.uint8)
        for chunk, offset, length in zip(chunks, offsets, lengths):
            start = self._chunk_local[chunk]
            shards[self._chunk_shard[chunk]]["images"].read_direct(
                buffer, np.s_[start:start + length], np.s_[offset:offset + length])
        return buffer[offsets[slot] + indices - self._chunk_first[chunk_of]]

    def _load_cache(self, shards: _OpenShards) -> None:
        cache = np.empty((self.num_images, *self.image_hw, 3), np.uint8)
        firsts = np.cumsum([0, *self._shard_counts])
        for index, (first, count) in enumerate(zip(firsts, self._shard_counts)):
            shards[index]["images"].read_direct(cache, np.s_[:count], np.s_[first:first + count])
        self._cache = cache

    def _cpu_batches(self, epoch: int):
        """This rank's batches of one epoch as CPU tensors (uint8 NHWC images, labels, image_ids)."""
        segments = self._rank_segments(epoch)
        with _OpenShards(self._shard_paths) as shards:
            if self._cache is None and self._cacheable:
                self._load_cache(shards)
            pieces = ((self._read_images(indices, shards), indices) for indices in segments)
            for images, indices in rebatch(pieces, self.batch_size, self.drop_last):
                images, labels = torch.from_numpy(images), torch.from_numpy(self._labels[indices])
                if self.device.type == "cuda":  # pinned: the copies to the GPU then do not block
                    images, labels = images.pin_memory(), labels.pin_memory()
                yield images, labels, torch.from_numpy(self._image_ids[indices])

    def __iter__(self):
        epoch = self.epoch
        seed = np.random.SeedSequence([self.seed, epoch, self.rank]).generate_state(1, np.uint64)[0]
        # On `device`: drawing crops on the CPU would need a pageable copy to the GPU per
        # batch, which waits for the GPU to finish its queued work.
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        batches = self._cpu_batches(epoch)
        if self.prefetch:
            batches = Prefetcher(batches, self.prefetch)
        for images, labels, image_ids in batches:
            images = images.to(self.device, non_blocking=True)
            yield self.transform(images, generator), labels.to(self.device, non_blocking=True), image_ids


def _check_dataset(f: h5py.File, path: Path, name: str, dtype, shape: tuple) -> None:
    if name not in f:
        raise ShardError(f"{path}: dataset {name!r} is missing; {PREPARE_HINT}")
    found = f[name]
    if found.dtype != dtype or found.shape != shape:
        raise ShardError(f"{path}: dataset {name!r} is {found.dtype} {found.shape}, the manifest implies "
                         f"{np.dtype(dtype)} {shape}; {PREPARE_HINT}")


class _OpenShards(dict):
    """Shard files, opened on first use by the thread that reads them and closed together."""

    def __init__(self, paths: list):
        super().__init__()
        self._paths = paths

    def __missing__(self, index: int) -> h5py.File:
        self[index] = h5py.File(self._paths[index], "r")
        return self[index]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for f in self.values():
            f.close()
