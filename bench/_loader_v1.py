"""The baseline of bench_loader.py: the shard loader's read + crop path as it was for
format-1 shards, which held every image as its central 72x72 square (daimlerpedcls whole
at 144x72) in one fixed-size (N, H, W, 3) dataset. Kept compact and only for measuring.

Per epoch, as the old loader did: in a reader thread, one h5py read_direct per chunk of
consecutive images into a buffer, a numpy gather of the wanted images from it (or from
the whole split held in memory: the old cache), regrouping into batches; then in the
caller, a random or centre crop (+ flip) of the fixed-size batch by one index_select and
the fused normalisation. The epoch order is taken from a ShardLoader over the same
images, so both sides read the same images in the same order.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from decathlon.data import ShardLoader, get_domain
from decathlon.data.prefetch import Prefetcher
from decathlon.data.transforms import AugmentationSpec, centre_offsets


def write_squares(path: Path, loader: ShardLoader) -> None:
    """A format-1 style file: the central square (daimlerpedcls: whole) of every image of
    `loader`'s split, cut as format 1 stored it (offsets (size - 72) // 2)."""
    shards, fixed = loader.shards, get_domain(loader.domain).image_hw
    height, width = fixed if loader.domain == "daimlerpedcls" else (72, 72)
    squares = np.empty((shards.num_images, height, width, 3), np.uint8)
    pixels = shards.load(torch.device("cpu")).numpy()
    for i, ((h, w), start) in enumerate(zip(shards.shapes, shards.offsets[:-1])):
        image = pixels[start:start + h * w].reshape(h, w, 3)
        top, left = (h - height) // 2, (w - width) // 2
        squares[i] = image[top:top + height, left:left + width]
    with h5py.File(path, "w") as f:
        f["images"] = squares


class SquareLoader:
    """Batches (normalised float NCHW, image indices) of a squares file, in `order_from`'s order."""

    def __init__(self, path: Path, order_from: ShardLoader, spec: AugmentationSpec, *, cached: bool,
                 chunk_size: int = 256, prefetch: int = 2):
        self.path, self.order_from, self.spec, self.cached = path, order_from, spec, cached
        self.batch_size, self.device, self.prefetch = order_from.batch_size, order_from.device, prefetch
        self.chunk_size, self.epoch = chunk_size, 0
        with h5py.File(path, "r") as f:
            self.num_images = len(f["images"])
            self._cache = f["images"][:] if cached else None
        info = get_domain(order_from.domain)
        std, mean = torch.tensor(info.std), torch.tensor(info.mean)
        self._scale = (1.0 / (255.0 * std))[:, None, None].to(self.device)
        self._shift = (-mean / std)[:, None, None].to(self.device)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _segments(self):
        order, window_starts = self.order_from.epoch_order(self.epoch)
        return [order[a:b] for a, b in zip(window_starts[:-1], window_starts[1:])]

    def _read(self, f: h5py.File, indices: np.ndarray) -> np.ndarray:
        if self._cache is not None:
            return self._cache[indices]
        chunk_first = np.arange(0, self.num_images, self.chunk_size)
        chunk_of = np.searchsorted(chunk_first, indices, side="right") - 1
        chunks, slot = np.unique(chunk_of, return_inverse=True)
        lengths = np.minimum(self.chunk_size, self.num_images - chunk_first[chunks])
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        buffer = np.empty((lengths.sum(), *f["images"].shape[1:]), np.uint8)
        for chunk, offset, length in zip(chunks, offsets, lengths):
            start = chunk_first[chunk]
            f["images"].read_direct(buffer, np.s_[start:start + length], np.s_[offset:offset + length])
        return buffer[offsets[slot] + indices - chunk_first[chunk_of]]

    def _cpu_batches(self):
        with h5py.File(self.path, "r") as f:
            held, count = [], 0
            for indices in self._segments():
                images, start = self._read(f, indices), 0
                while start < len(indices):
                    take = min(self.batch_size - count, len(indices) - start)
                    held.append((images[start:start + take], indices[start:start + take]))
                    count, start = count + take, start + take
                    if count == self.batch_size:
                        yield tuple(torch.from_numpy(np.concatenate(part)) for part in zip(*held))
                        held, count = [], 0
            if held:
                yield tuple(torch.from_numpy(np.concatenate(part)) for part in zip(*held))

    def __iter__(self):
        generator = torch.Generator(device=self.device).manual_seed(self.epoch)
        batches = Prefetcher(self._cpu_batches(), self.prefetch) if self.prefetch else self._cpu_batches()
        for images, indices in batches:
            yield self._transform(images.to(self.device, non_blocking=True), generator), indices

    def _transform(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, height, width, channels = images.shape
        crop_h, crop_w = self.spec.crop_hw
        device = images.device
        if self.spec.random_crop:
            tops = torch.randint(height - crop_h + 1, (n,), generator=generator, device=device)
            lefts = torch.randint(width - crop_w + 1, (n,), generator=generator, device=device)
        else:
            tops = centre_offsets(torch.full((n,), height, device=device), crop_h)
            lefts = centre_offsets(torch.full((n,), width, device=device), crop_w)
        flips = (torch.randint(2, (n,), generator=generator, device=device).bool() if self.spec.flip
                 else torch.zeros(n, dtype=torch.bool, device=device))
        rows = torch.arange(n, device=device)[:, None] * height + tops[:, None] + torch.arange(crop_h, device=device)
        forward = torch.arange(crop_w, device=device)
        cols = lefts[:, None] + torch.where(flips[:, None], crop_w - 1 - forward, forward)
        pixels = (rows[:, :, None] * width + cols[:, None, :]).view(-1)
        x = images.reshape(n * height * width, channels).index_select(0, pixels).view(n, crop_h, crop_w, channels)
        out = x.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
        return out.mul_(self._scale).add_(self._shift)
