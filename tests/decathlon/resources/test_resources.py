"""The packaged public test labels: present, checksummed, and refused when damaged."""
import zipfile

import pytest

import decathlon.resources
from decathlon.cli import main as decathlon_main
from decathlon.resources import LABELS_TEST_SHA256, ResourceError, checked_labels_zip, labels_test_zip
from data_prep.__main__ import main as data_prep_main


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


@pytest.fixture
def tampered_package(tmp_path, monkeypatch):
    """The package as if its labels_test.zip had been replaced by a damaged copy."""
    tampered = tmp_path / "package" / "labels_test.zip"
    tampered.parent.mkdir()
    data = bytearray(labels_test_zip().read_bytes())
    data[100] ^= 1
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(decathlon.resources, "packaged_labels_path", lambda: tampered)
    labels_test_zip.cache_clear()
    yield tampered
    labels_test_zip.cache_clear()


def test_tampered_packaged_labels_give_one_line_through_each_command(tampered_package, tmp_path, capsys):
    (tmp_path / "results.json").write_text("[]")
    (tmp_path / "source" / "annotations").mkdir(parents=True)
    commands = {"decathlon score": lambda: decathlon_main(["score", str(tmp_path / "results.json")]),
                "prepare": lambda: data_prep_main(["prepare", "--source", str(tmp_path / "source"),
                                                   "--out", str(tmp_path / "out"), "--quiet"])}
    for command, run in commands.items():
        assert run() == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, command
        assert f"{tampered_package}: sha256 is " in err and f", expected {LABELS_TEST_SHA256}" in err, command
