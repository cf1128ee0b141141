"""Worker side of preparation: decode one JPEG, check it, bring it to the stored geometry.

Stored geometry. The Decathlon's images are already resized so that the shorter side is
72 px; a handful of aircraft and dtd images are 73. Every image is stored whole:
  * shorter side 72: stored as decoded, no resampling;
  * any other shorter side s (the 73-px images): resized with PIL's Lanczos filter to
    shorter side 72 and longer side round(long * 72 / s) (Python's round, half to even).
Nothing is cropped, so the random crops of the public codes can reach the whole image.
Images are stored as RGB uint8 (grey images get three equal channels). The stored size
of every image follows from its annotated width and height alone (`stored_shapes`), so
shards can be laid out before any JPEG is decoded.
"""
from __future__ import annotations

import io
import signal
from typing import NamedTuple

import numpy as np
from PIL import Image

from data_prep.errors import PrepareError
from decathlon.data.domains import SHORT_SIDE

RESAMPLING = Image.Resampling.LANCZOS
STORAGE = (f"decoded to RGB uint8 (grey: three equal channels) and stored whole with a {SHORT_SIDE} px shorter "
           f"side: images whose shorter side s is not {SHORT_SIDE} (a few 73-px aircraft and dtd images) are "
           f"resized with PIL Lanczos to {SHORT_SIDE} x round(long * {SHORT_SIDE} / s); no crop")


class DecodeTask(NamedTuple):
    key: tuple          # (split, annotation position): where the result goes
    origin: str         # the JPEG's file path or tarball member, for error messages
    entry: str          # the annotation file and entry, for error messages
    raw: bytes
    width: int          # size the annotation promises
    height: int


def stored_shapes(widths, heights) -> np.ndarray:
    """(n, 2) int64 (height, width) of images of the given released sizes once stored."""
    widths, heights = np.asarray(widths, np.int64), np.asarray(heights, np.int64)
    short = np.minimum(widths, heights)
    scale = SHORT_SIDE / short
    # np.round rounds half to even, as Python's round does.
    stored = [np.where(short == SHORT_SIDE, side, np.round(side * scale).astype(np.int64))
              for side in (heights, widths)]
    return np.stack(stored, axis=-1).reshape(-1, 2)


def ignore_sigint() -> None:
    """Pool initializer: Ctrl-C is handled once, by the main process, which then stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def to_storage(image: Image.Image) -> np.ndarray:
    """An RGB `image` at its stored size (see the module docstring) as (H, W, 3) uint8."""
    (height, width), = stored_shapes(image.width, image.height)
    if (width, height) != image.size:
        image = image.resize((int(width), int(height)), RESAMPLING)
    return np.asarray(image, dtype=np.uint8)


def decode_one(task: DecodeTask) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(task.raw)) as image:
            size = image.size
            rgb = image.convert("RGB")  # decodes; a corrupt or truncated file fails here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise PrepareError(f"{task.origin}: cannot decode JPEG ({err}); entry {task.entry}") from None
    if size != (task.width, task.height):
        raise PrepareError(f"{task.origin}: image is {size[0]}x{size[1]} (WxH) but the annotation "
                           f"says {task.width}x{task.height}; entry {task.entry}")
    return to_storage(rgb)


def decode_batch(tasks: list) -> list:
    """Run in a worker process: [(key, (H, W, 3) uint8 array)] in the order of `tasks`."""
    return [(task.key, decode_one(task)) for task in tasks]
