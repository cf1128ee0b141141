"""Batch plumbing of the shard loader: regrouping read pieces into batches, and reading
ahead in a background thread (h5py and numpy release the GIL while they copy)."""
from __future__ import annotations

import queue
import threading
from contextlib import closing

import numpy as np


def rebatch(pieces, batch_size: int, drop_last: bool):
    """Regroup (images, indices) pieces of any length into batches of `batch_size`."""
    held, held_count = [], 0
    for images, indices in pieces:
        start = 0
        while start < len(indices):
            take = min(batch_size - held_count, len(indices) - start)
            held.append((images[start:start + take], indices[start:start + take]))
            held_count, start = held_count + take, start + take
            if held_count == batch_size:
                yield _join(held)
                held, held_count = [], 0
    if held and not drop_last:
        yield _join(held)


def _join(pieces: list):
    return pieces[0] if len(pieces) == 1 else tuple(np.concatenate(part) for part in zip(*pieces))


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
