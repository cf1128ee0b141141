"""Worker side of preparation: decode one JPEG, check it, bring it to the stored geometry.

Stored geometry. The Decathlon's images are already resized so that the shorter side is
72 px; a handful of aircraft and dtd images are 73. Every image is stored whole:
  * shorter side 72: stored as decoded, no resampling;
  * any other shorter side s (the 73-px images): resized as the public codes' loading
    pipeline resized them, torchvision's Resize(72) on the PIL image: PIL's bilinear
    filter, shorter side 72, longer side int(72 * long / s) (floored). Done once here
    rather than at every load; the result is the same.
Nothing is cropped, so the random crops of the public codes can reach the whole image.
Images are stored as RGB uint8 (grey images get three equal channels). The stored size
of every image follows from its annotated width and height alone (`stored_shapes`), so
shards can be laid out before any JPEG is decoded.

Pixel modes. PIL opens whatever the file holds, whatever its name says (a PNG saved as
.jpg opens as a PNG), and its convert("RGB") clips wider values to 255: a 16-bit grey
image would be stored white. 16-bit grey is therefore scaled to 8 bits (value >> 8, the
high byte) first; the modes convert("RGB") maps faithfully are converted as the public
loaders did (alpha dropped, a palette looked up); any other mode (32-bit integer or float
grey, whose range is unknown, LAB, HSV, ...) is refused with the file named.
"""
from __future__ import annotations

import io
import signal
from typing import NamedTuple

import numpy as np
from PIL import Image

from data_prep.errors import PrepareError
from decathlon.data.domains import SHORT_SIDE

RESAMPLING = Image.Resampling.BILINEAR   # torchvision Resize's default on PIL images
# Recorded with every split: shards made with another description (e.g. the Lanczos resize
# and rounded side of earlier versions) do not match it and are prepared again.
STORAGE = (f"decoded to RGB uint8 (grey: three equal channels; 16-bit grey: its high byte) and stored whole "
           f"with a {SHORT_SIDE} px shorter side: images whose shorter side s is not {SHORT_SIDE} (a few 73-px "
           f"aircraft and dtd images) are resized as torchvision's Resize({SHORT_SIDE}) on PIL images, PIL bilinear "
           f"to {SHORT_SIDE} x int({SHORT_SIDE} * long / s); no crop")
# Modes PIL's convert("RGB") maps without loss of meaning (alpha is dropped, as the public
# loaders' convert("RGB") dropped it), and 16-bit grey in its byte orders.
RGB_CONVERTIBLE = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})
GREY_16_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


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
    # Integer arithmetic: torchvision's int(size * long / short), exact for every size.
    stored = [np.where(short == SHORT_SIDE, side, SHORT_SIDE * side // short) for side in (heights, widths)]
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


def to_rgb(image: Image.Image) -> Image.Image | None:
    """The decoded `image` as RGB, or None for a mode that has no faithful 8-bit RGB form
    (see "Pixel modes" in the module docstring)."""
    if image.mode in GREY_16_BIT:
        high_bytes = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(high_bytes).convert("RGB")
    return image.convert("RGB") if image.mode in RGB_CONVERTIBLE else None


def decode_one(task: DecodeTask) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(task.raw)) as image:
            size, mode, kind = image.size, image.mode, image.format
            rgb = to_rgb(image)  # decodes; a corrupt or truncated file fails here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise PrepareError(f"{task.origin}: cannot decode JPEG ({err}); entry {task.entry}") from None
    if rgb is None:
        raise PrepareError(f"{task.origin}: the image is in PIL mode {mode!r} ({kind} data), which has no "
                           f"faithful 8-bit RGB form; expected an 8-bit RGB, grey, palette or CMYK image, or "
                           f"16-bit grey; entry {task.entry}")
    if size != (task.width, task.height):
        raise PrepareError(f"{task.origin}: image is {size[0]}x{size[1]} (WxH) but the annotation "
                           f"says {task.width}x{task.height}; entry {task.entry}")
    return to_storage(rgb)


def decode_batch(tasks: list) -> list:
    """Run in a worker process: [(key, (H, W, 3) uint8 array)] in the order of `tasks`."""
    return [(task.key, decode_one(task)) for task in tasks]
