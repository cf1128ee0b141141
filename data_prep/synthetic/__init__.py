"""The embedded default: a deterministic synthetic mini-decathlon in the official on-disk format.

`generate(root)` writes it (see `data_prep.synthetic.generator`); `domains` holds each
domain's look, `draw` the drawing primitives.
"""
from data_prep.synthetic.generator import (DEFAULT_SIZES, GENERATOR_VERSION, LABELS_ZIP, MARKER_FILE,
                                           MIN_IMAGES_PER_CLASS, generate, image_size, split_sizes)

__all__ = ["DEFAULT_SIZES", "GENERATOR_VERSION", "LABELS_ZIP", "MARKER_FILE", "MIN_IMAGES_PER_CLASS",
           "generate", "image_size", "split_sizes"]
