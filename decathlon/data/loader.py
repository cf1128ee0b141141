"""A fast loader over one (domain, split) of prepared HDF5 shards, or several splits
read as one (the train+val protocol).

Why this is hand-written rather than a torch.utils.data.DataLoader: the public codes'
pipeline calls a per-sample `__getitem__` (open one JPEG, PIL decode, five PIL/tensor
transforms) in worker processes that pickle every sample back to the trainer. At 72 px
that per-image Python and inter-process overhead, not the arithmetic, is the cost. Here
images stay uint8 in flat pixel buffers until they are on `device`, and the augmentation
is one set of batched tensor ops there (decathlon.data.transforms) over a ragged batch of
whole images. There are two ways to get the pixels there, chosen per split:

- resident: the whole split (pixels, offsets, shapes, labels) is loaded once onto
  `device`. Each epoch's order is computed on the host and uploaded once; a batch is a
  slice of it and one gather on the device, so the host only launches kernels (no
  per-step copies to the device, no syncs). Chosen when the split fits a byte budget
  (`resident_budget`: a fraction of a GPU's free memory, 512 MiB on a CPU) - every
  target split of the Decathlon fits a GPU - or forced with `resident=True/False`.
- streamed: a background thread reads chunks of `chunk_size` consecutive images of a
  shard, each one plain read, into one reused buffer, and packs each batch's images into
  a buffer of its own (pinned for a GPU), `prefetch` batches ahead (imagenet12 at full
  scale).

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
Both modes yield exactly the same batches, crops included: the crops are drawn from one
generator per (seed, epoch, rank) on `device`, batch by batch, from the images' shapes.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from decathlon.data.manifest import MANIFEST_NAME
from decathlon.data.prefetch import Piece, Prefetcher, rebatch
from decathlon.data.shard_files import PREPARE_HINT, ShardError, SplitShards
from decathlon.data.transforms import Ragged, make_batch_transform

RESIDENT_CPU_BYTES = 512 * 2**20
RESIDENT_GPU_FRACTION = 0.2  # of the free memory: room for the model and the other splits' loaders


def resident_budget(device: torch.device) -> int:
    """Bytes a split may take to be held whole on `device`."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * RESIDENT_GPU_FRACTION)
    return RESIDENT_CPU_BYTES


class _Resident(NamedTuple):
    pixels: torch.Tensor   # uint8 (P, 3)
    starts: torch.Tensor   # int64 (n,)
    shapes: torch.Tensor   # int64 (n, 2)
    labels: torch.Tensor   # int64 (n,)


class ShardLoader:
    """Iterate (images float NCHW on device, labels int64 on device, image_ids int64 on CPU).

    Call `set_epoch(e)` before each epoch: like DistributedSampler, the order changes only
    when the epoch does. Labels are -1 where the split has none (the stripped test split).
    `resident`: None chooses by size (see the module docstring), True/False forces it;
    `prefetch`: batches the reader thread keeps ready when streaming (0: read in the caller);
    `drop_last`: skip the epoch's last, shorter batch (else it is yielded: ceil(n / batch)
    batches); `crop_rounding`: how centre crops round a half (decathlon.data.transforms).
    """

    def __init__(self, root, domain: str, split: str | tuple, batch_size: int, *, train: bool, protocol: str,
                 shuffle: bool, seed: int, drop_last: bool, device, rank: int = 0, world_size: int = 1,
                 chunk_size: int = 256, prefetch: int = 4, max_images: int | None = None,
                 shuffle_window_chunks: int = 16, channels_last: bool = False, resident: bool | None = None,
                 crop_rounding: str = "half_even"):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        for name, value, least in (("batch_size", batch_size, 1), ("chunk_size", chunk_size, 1),
                                   ("shuffle_window_chunks", shuffle_window_chunks, 1), ("prefetch", prefetch, 0)):
            if value < least:
                raise ValueError(f"{name} must be at least {least}, got {value}")
        self.domain, self.splits = domain, (split,) if isinstance(split, str) else tuple(split)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.rank, self.world_size, self.prefetch = rank, world_size, prefetch
        self.shuffle_window_chunks = shuffle_window_chunks
        self.transform = make_batch_transform(domain, protocol, train, channels_last, crop_rounding)
        self.shards = SplitShards(root, domain, self.splits, max_images)
        try:  # once here, so that no batch needs a check that would wait for the device
            self.transform.check_sizes(torch.from_numpy(self.shards.shapes))
        except ValueError as err:
            raise ShardError(f"{self.shards.root / MANIFEST_NAME}: {domain}/{'+'.join(self.splits)}: {err} "
                             f"(images are counted in manifest order); {PREPARE_HINT}") from None
        self.epoch, self.num_images = 0, self.shards.num_images
        self._build_chunks(chunk_size)
        self.nbytes = self.shards.num_pixels * 3 + self.num_images * 40  # pixels; starts, shapes, labels
        self.resident = self.nbytes <= resident_budget(self.device) if resident is None else bool(resident)
        self._resident, self._spare_windows = None, []

    def _build_chunks(self, chunk_size: int) -> None:
        """Chunk table: shard, first global image and length of each chunk."""
        shard_of, first, length = [], [], []
        for shard, (begin, end) in enumerate(zip(self.shards.first_image[:-1], self.shards.first_image[1:])):
            for start in range(begin, end, chunk_size):
                shard_of.append(shard)
                first.append(start)
                length.append(min(chunk_size, end - start))
        self._chunk_shard, self._chunk_first, self._chunk_length = np.array(shard_of), np.array(first), np.array(length)

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

    @property
    def real_images_per_rank(self) -> int:
        """This rank's images that are not padding. Without drop_last the epoch is padded to
        a multiple of world_size by repeating its first images, at the end of the last ranks'
        parts: a rank's part is its first `real_images_per_rank` images, then repeats."""
        return max(0, min(self.images_per_rank, self.num_images - self.rank * self.images_per_rank))

    def __len__(self) -> int:
        per_rank = self.images_per_rank
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def _rank_order(self, epoch: int) -> tuple:
        """This rank's slice of the epoch, and the cuts that split it where shuffle windows end."""
        order, window_starts = self.epoch_order(epoch)
        total = self.images_per_rank * self.world_size
        order = np.resize(order, total)  # drops the tail, or pads from the start
        begin, end = self.rank * self.images_per_rank, (self.rank + 1) * self.images_per_rank
        return order[begin:end], np.unique(np.clip(np.append(window_starts, total), begin, end)) - begin

    def __iter__(self):
        epoch = self.epoch
        seed = np.random.SeedSequence([self.seed, epoch, self.rank]).generate_state(1, np.uint64)[0]
        # On `device`: drawing crops on the CPU would need a copy to the GPU per batch.
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        if self.resident:
            yield from self._resident_batches(epoch, generator)
        else:
            yield from self._streamed_batches(epoch, generator)

    def _resident_batches(self, epoch: int, generator: torch.Generator):
        if self._resident is None:
            shards, to_device = self.shards, lambda array: torch.from_numpy(array).to(self.device)
            self._resident = _Resident(shards.load(self.device), to_device(shards.offsets[:-1]),
                                       to_device(shards.shapes), to_device(shards.labels))
        data = self._resident
        order, _ = self._rank_order(epoch)
        on_host = torch.from_numpy(order)
        if self.device.type == "cuda":  # pinned: the one upload per epoch does not wait for the GPU
            on_host = on_host.pin_memory()
        on_device = on_host.to(self.device, non_blocking=True)
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            index = on_device[start:start + self.batch_size]
            batch = Ragged(data.pixels, data.starts.index_select(0, index), data.shapes.index_select(0, index))
            yield (self._augment(batch, generator), data.labels.index_select(0, index),
                   torch.from_numpy(self.shards.image_ids[order[start:start + self.batch_size]]))

    def _streamed_batches(self, epoch: int, generator: torch.Generator):
        batches = self._read_batches(epoch)
        if self.prefetch:
            batches = Prefetcher(batches, self.prefetch)
        for pixels, starts, shapes, labels, image_ids in batches:
            batch = Ragged(*(part.to(self.device, non_blocking=True) for part in (pixels, starts, shapes)))
            yield self._augment(batch, generator), labels.to(self.device, non_blocking=True), image_ids

    def _augment(self, batch: Ragged, generator: torch.Generator) -> torch.Tensor:
        """The transform without its per-batch input checks: every image of the split was
        checked when it was opened, and a check of a batch on a GPU would wait for it."""
        return self.transform.apply(batch, self.transform.draw(batch.shapes, generator))

    def _read_batches(self, epoch: int):
        """This rank's batches of one epoch as CPU tensors (pinned for a GPU): packed pixels,
        starts, shapes, labels, image_ids."""
        order, cuts = self._rank_order(epoch)
        pin = self.device.type == "cuda"  # then the copies to the GPU do not block
        window = self._spare_windows.pop() if self._spare_windows else _Window()
        try:
            with self.shards.open() as files:
                pieces = (self._read_piece(files, order[a:b], window) for a, b in zip(cuts[:-1], cuts[1:]))
                for pixels, starts, shapes, indices in rebatch(pieces, self.batch_size, self.drop_last, pin):
                    small = [torch.from_numpy(array) for array in (starts, shapes, self.shards.labels[indices])]
                    if pin:
                        small = [tensor.pin_memory() for tensor in small]
                    yield pixels, *small, torch.from_numpy(self.shards.image_ids[indices])
        finally:
            self._spare_windows.append(window)

    def _read_piece(self, files, indices: np.ndarray, window: _Window) -> Piece:
        """The images at global `indices`: one plain read per chunk touched, into `window`."""
        offsets = self.shards.offsets
        chunk_of = np.searchsorted(self._chunk_first, indices, side="right") - 1
        chunks, slot = np.unique(chunk_of, return_inverse=True)
        firsts, stops = self._chunk_first[chunks], self._chunk_first[chunks] + self._chunk_length[chunks]
        sizes = offsets[stops] - offsets[firsts]
        placed = np.cumsum(sizes) - sizes
        buffer = window.take(int(sizes.sum()))
        array = buffer.numpy()
        for chunk, first, stop, at, size in zip(chunks, firsts, stops, placed, sizes):
            self.shards.read(files, self._chunk_shard[chunk], first, stop, array[at:at + size])
        starts = placed[slot] + offsets[indices] - offsets[firsts[slot]]
        return Piece(buffer, starts, self.shards.shapes[indices], indices)


class _Window:
    """A read buffer reused window after window and epoch after epoch: fresh memory costs
    a page fault on first touch of every page, which is most of the cost of a read from
    the page cache."""

    def __init__(self):
        self._pixels = torch.empty((0, 3), dtype=torch.uint8)

    def take(self, num_pixels: int) -> torch.Tensor:
        if len(self._pixels) < num_pixels:
            self._pixels = torch.empty((num_pixels, 3), dtype=torch.uint8)
        return self._pixels[:num_pixels]
