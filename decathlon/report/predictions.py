"""A job's predictions file (predictions_*.npz: `image_ids`, `labels`), read back safely."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np


class PredictionsError(ValueError):
    """A job's predictions file that is missing or cannot be read; the message names it."""


def read_predictions(path) -> tuple:
    """(image_ids, labels) of a job's predictions file, as int64 arrays of one length.

    Read with allow_pickle=False; a missing, truncated or foreign file raises
    PredictionsError naming the file (numpy raises a different type for each damage)."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: predictions file missing")
    try:
        arrays = np.load(path, allow_pickle=False)
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an npz archive")
        with arrays:
            image_ids, labels = arrays["image_ids"], arrays["labels"]
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else ""
        raise PredictionsError(f"{path}: cannot read the predictions ({type(err).__name__}: {reason})") from None
    if not (image_ids.ndim == 1 and image_ids.shape == labels.shape and np.issubdtype(image_ids.dtype, np.integer)
            and np.issubdtype(labels.dtype, np.integer)):
        raise PredictionsError(f"{path}: expected integer 1-D arrays 'image_ids' and 'labels' of one length, "
                               f"found {image_ids.dtype}{image_ids.shape} and {labels.dtype}{labels.shape}")
    return image_ids.astype(np.int64), labels.astype(np.int64)
