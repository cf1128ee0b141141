"""The packaged public test labels: present, checksummed, and refused when damaged."""
import zipfile

import pytest

from decathlon.resources import LABELS_TEST_SHA256, ResourceError, checked_labels_zip, labels_test_zip


def test_packaged_labels_are_inside_the_package_and_hold_ten_domains():
    path = labels_test_zip()
    assert path.parent.name == "resources" and path.parent.parent.name == "decathlon"
    with zipfile.ZipFile(path) as archive:
        assert sum(name.endswith("_test.json") for name in archive.namelist()) == 10


def test_damaged_copy_is_refused_with_both_checksums(tmp_path):
    damaged = tmp_path / "labels_test.zip"
    data = bytearray(labels_test_zip().read_bytes())
    data[100] ^= 1
    damaged.write_bytes(bytes(data))
    with pytest.raises(ResourceError, match=f"labels_test.zip: sha256 is [0-9a-f]{{64}}, expected {LABELS_TEST_SHA256}"):
        checked_labels_zip(damaged)


def test_missing_copy_is_refused(tmp_path):
    with pytest.raises(ResourceError, match="missing"):
        checked_labels_zip(tmp_path / "labels_test.zip")
