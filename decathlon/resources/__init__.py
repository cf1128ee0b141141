"""Files the suite ships: the benchmark's public test labels (`labels_test.zip`).

The zip is the public release of the ten `<domain>_test.json` annotation files WITH
labels (139,760 test images; real data in the official COCO-style format). It is
installed as package data so that scoring the test split, preparing real data with
labels attached, and the tests need no file from outside the package. Its sha256 is
checked on first use in each process, so a damaged or replaced copy is refused.
"""
from __future__ import annotations

import functools
import hashlib
from importlib import resources
from pathlib import Path

LABELS_TEST_NAME = "labels_test.zip"
LABELS_TEST_SHA256 = "505e4bb6053195233772662da1712184d381de8ac3677b6c4c582ad55c23b2da"


class ResourceError(OSError):
    """A file of the package that is missing or not the one it should be."""


def packaged_labels_path() -> Path:
    """Where the package keeps labels_test.zip (unchecked)."""
    return Path(str(resources.files(__name__) / LABELS_TEST_NAME))


@functools.cache
def labels_test_zip() -> Path:
    """Path of the packaged labels_test.zip, after checking its sha256."""
    return checked_labels_zip(packaged_labels_path())


def checked_labels_zip(path: Path) -> Path:
    """`path` if it is the public labels_test.zip byte for byte, else a ResourceError."""
    if not path.is_file():
        raise ResourceError(f"{path}: the packaged public test labels are missing (reinstall the package)")
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    if found != LABELS_TEST_SHA256:
        raise ResourceError(f"{path}: sha256 is {found}, expected {LABELS_TEST_SHA256} "
                            "(a damaged or replaced copy of the public test labels; reinstall the package)")
    return path
