"""Worker side of preparation: decode one JPEG, check it, bring it to the stored geometry.

Stored geometry. The Decathlon's images are already resized so that the shorter side is
72 px (a handful of aircraft and dtd images are 73). Every image is scaled with PIL's
Lanczos filter by the smallest factor that makes it cover the domain's stored H x W
(no resize at all when one side already equals the target and the other is at least the
target), then centre-cropped to H x W:
  * 72 x 72 for nine domains: the shorter side goes to exactly 72 and the longer side is
    centre-cropped. Both public protocols remain possible on the stored image: a random
    or centre 64 crop of the 72 image (residual adapters), or the whole 72 image (SpotTune).
  * 144 x 72 (H x W) for daimlerpedcls, whose images are 72 wide and 144 high: kept whole,
    so the 72 x 144 input that SpotTune feeds is still available.
Images are stored as RGB uint8 (grey images get three equal channels).
"""
from __future__ import annotations

import io
import signal
from typing import NamedTuple

import numpy as np
from PIL import Image

from data_prep.errors import PrepareError

RESAMPLING = Image.Resampling.LANCZOS


class DecodeTask(NamedTuple):
    key: tuple          # (split, annotation position): where the result goes
    origin: str         # the JPEG's file path or tarball member, for error messages
    entry: str          # the annotation file and entry, for error messages
    raw: bytes
    width: int          # size the annotation promises
    height: int


def storage_description(hw: tuple) -> str:
    """The manifest's `storage` string for images stored at hw = (H, W)."""
    h, w = hw
    return (f"decoded to RGB uint8; resized with PIL Lanczos by the smallest factor that makes the "
            f"image cover {h}x{w} (HxW) - for a square target the shorter side becomes {h} px, and "
            f"images that already fit are not resized - then centre-cropped to {h}x{w}")


def ignore_sigint() -> None:
    """Pool initializer: Ctrl-C is handled once, by the main process, which then stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def fit_to_storage(image: Image.Image, hw: tuple) -> np.ndarray:
    """Scale an RGB `image` to just cover hw = (H, W), centre-crop, return (H, W, 3) uint8."""
    target_h, target_w = hw
    w, h = image.size
    fits = (w == target_w and h >= target_h) or (h == target_h and w >= target_w)
    if not fits:
        scale = max(target_w / w, target_h / h)
        w, h = max(target_w, round(w * scale)), max(target_h, round(h * scale))
        image = image.resize((w, h), RESAMPLING)
    left, top = (w - target_w) // 2, (h - target_h) // 2
    return np.asarray(image.crop((left, top, left + target_w, top + target_h)), dtype=np.uint8)


def decode_one(task: DecodeTask, hw: tuple) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(task.raw)) as image:
            size = image.size
            rgb = image.convert("RGB")  # decodes; a corrupt or truncated file fails here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise PrepareError(f"{task.origin}: cannot decode JPEG ({err}); entry {task.entry}") from None
    if size != (task.width, task.height):
        raise PrepareError(f"{task.origin}: image is {size[0]}x{size[1]} (WxH) but the annotation "
                           f"says {task.width}x{task.height}; entry {task.entry}")
    return fit_to_storage(rgb, hw)


def decode_batch(hw: tuple, tasks: list) -> list:
    """Run in a worker process: [(key, (H, W, 3) uint8 array)] in the order of `tasks`."""
    return [(task.key, decode_one(task, hw)) for task in tasks]
