"""`verify` passes on a good folder and names every kind of mismatch."""
import json
import shutil

import h5py
import pytest

from data_prep.__main__ import main
from data_prep.verify import verify


@pytest.fixture
def out(prepared, tmp_path):
    shutil.copytree(prepared, tmp_path / "out")
    return tmp_path / "out"


def _edit_manifest(out, edit):
    manifest = json.loads((out / "manifest.json").read_text())
    edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_good_folder_passes(prepared, capsys):
    report = verify(prepared)
    assert report.ok and len(report.checked) == 12
    assert main(["verify", str(prepared)]) == 0
    assert "ok       daimlerpedcls/test: 20 images in 3 shards (no labels)" in capsys.readouterr().out


def test_flipped_byte_is_reported(out, capsys):
    shard = out / "dtd/train-00000.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    report = verify(out)
    assert [p.split(": sha256 is")[0] for p in report.problems] == [str(shard)]
    assert main(["verify", str(out)]) == 1
    captured = capsys.readouterr()
    assert "MISMATCH dtd/train" in captured.out and f"{shard}: sha256 is" in captured.err


def test_wrong_count_is_reported(out):
    _edit_manifest(out, lambda m: m["domains"]["aircraft"]["splits"]["val"].update(num_images=7))
    _edit_manifest(out, lambda m: m["domains"]["dtd"]["splits"]["test"]["shards"][2].update(num_images=5))
    problems = verify(out).problems
    assert "aircraft/val: shards hold 6 images but num_images is 7" in problems
    assert any(p.startswith(str(out / "dtd/test-00002.h5")) and "dataset 'images' is uint8 (4, 72, 72, 3), "
               "expected uint8 (5, 72, 72, 3)" in p for p in problems)


def test_out_of_range_label_is_reported(out):
    shard = out / "imagenet12/train-00000.h5"
    with h5py.File(shard, "r+") as f:
        f["labels"][3] = 1000
    problems = verify(out).problems
    assert any(p == f"{shard}: 1 labels outside 0..999 (first: row 3, label 1000)" for p in problems)
    assert any(p.startswith(f"{shard}: sha256 is") for p in problems)


def test_broken_id_scheme_and_missing_shard_are_reported(out):
    with h5py.File(out / "aircraft/val-00000.h5", "r+") as f:
        f["image_ids"][0] = 20000001
    (out / "aircraft/test-00001.h5").unlink()
    problems = verify(out).problems
    assert any("1 image_ids break d*10**7 + s*10**5 + k (first: row 0, id 20000001)" in p for p in problems)
    assert f"{out / 'aircraft/test-00001.h5'}: missing" in problems


def test_no_manifest_exits_2(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert "no manifest here" in capsys.readouterr().err


def test_malformed_entry_is_reported_not_raised(out):
    _edit_manifest(out, lambda m: m["domains"]["dtd"]["splits"]["val"].pop("labels_known"))
    assert verify(out).problems == [f"{out / 'manifest.json'}: dtd/val: malformed manifest entry "
                                    "(KeyError: 'labels_known')"]
