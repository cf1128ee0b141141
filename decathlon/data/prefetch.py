"""Batch plumbing of the shard loader: regrouping read pieces into ragged batches, and
reading ahead in a background thread (file reads and numpy copies release the GIL)."""
from __future__ import annotations

import queue
import threading
from contextlib import closing
from typing import NamedTuple

import numpy as np
import torch


class Piece(NamedTuple):
    """Images read together: their pixels lie in one buffer, possibly among others'."""
    pixels: torch.Tensor   # uint8 (Q, 3), on the CPU
    starts: np.ndarray     # int64 (n,): first pixel of each image in `pixels`
    shapes: np.ndarray     # int64 (n, 2): (height, width)
    indices: np.ndarray    # int64 (n,): the images' global indices in the split


def host_buffer(num_pixels: int, pin: bool = False) -> torch.Tensor:
    """A uint8 (num_pixels, 3) CPU tensor. A pinned one (for copies to a GPU that do not
    block) comes from torch's caching host allocator; a plain one from numpy, whose
    allocator reuses freed heap memory for buffers of a few MB, where torch's CPU
    allocator costs several times more per batch."""
    if pin:
        return torch.empty((num_pixels, 3), dtype=torch.uint8, pin_memory=True)
    return torch.from_numpy(np.empty((num_pixels, 3), np.uint8))


def rebatch(pieces, batch_size: int, drop_last: bool, pin: bool = False):
    """Regroup pieces of any length into batches of `batch_size` images (the last one
    shorter unless drop_last), each a Piece whose images are packed one after another in
    a host_buffer of its own (pinned if `pin`).

    A piece's buffer may be reused once the next piece is asked for (the reader reads
    every window into the same buffer): the images of a batch still incomplete at that
    point are copied out first."""
    held, held_count = [], 0
    for piece in pieces:
        start = 0
        while start < len(piece.indices):
            take = min(batch_size - held_count, len(piece.indices) - start)
            held.append(Piece(piece.pixels, *(part[start:start + take] for part in piece[1:])))
            held_count, start = held_count + take, start + take
            if held_count == batch_size:
                yield _pack(held, pin)
                held, held_count = [], 0
        held = [_pack(held)] if held else []
    if held and not drop_last:
        yield _pack(held, pin)


def _pack(parts: list, pin: bool = False) -> Piece:
    """The images of `parts`, in order, packed into one new buffer."""
    shapes = np.concatenate([part.shapes for part in parts])
    sizes = shapes[:, 0] * shapes[:, 1]
    buffer = host_buffer(int(sizes.sum()), pin)
    images = []  # one copy per image (at most a batch of them), each a contiguous run of pixels
    for part in parts:
        source = part.pixels.numpy()
        images += [source[start:start + size] for start, size in zip(part.starts, part.shapes.prod(axis=1))]
    np.concatenate(images, out=buffer.numpy())
    return Piece(buffer, np.cumsum(sizes) - sizes, shapes, np.concatenate([part.indices for part in parts]))


class Prefetcher:
    """Runs a generator in a daemon thread, up to `depth` items ahead of the consumer."""
    _END = object()

    def __init__(self, items, depth: int):
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(items,), daemon=True, name="shard-prefetch")
        self._thread.start()

    def _produce(self, items) -> None:
        try:
            with closing(items):
                for item in items:
                    if not self._put(item):
                        return
            self._put(self._END)
        except BaseException as err:  # raised again in the consumer's thread
            self._put(err)

    def _put(self, item) -> bool:
        """Block until there is room, unless the consumer has gone; False if it has."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        try:
            while (item := self._queue.get()) is not self._END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
            self._thread.join()
