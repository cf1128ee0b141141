"""`verify` passes on a good folder and names every kind of mismatch."""
import json
import shutil

import h5py
import pytest

from data_prep.__main__ import main
from data_prep import verify


@pytest.fixture
def out(prepared, tmp_path):
    shutil.copytree(prepared, tmp_path / "out")
    return tmp_path / "out"


def _edit_manifest(out, edit):
    manifest = json.loads((out / "manifest.json").read_text())
    edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_good_folder_passes(prepared, capsys):
    assert (prepared / ".lock").is_file()  # the preparation's own lock file passes
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
    assert any(p.startswith(str(out / "dtd/test-00002.h5")) and "dataset 'offsets' is int64 (5,), "
               "expected int64 (6,)" in p for p in problems)


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


def _edit_shard(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


def _first_row_taller(f):
    height, width = f["shapes"][0]
    f["shapes"][0] = [height * width // 36, 36]  # the same pixel count, shorter side 36


GEOMETRY_CASES = {  # edit of aircraft/val-00000.h5 -> the problems verify must list (besides its sha256)
    "first offset": (lambda f: f["offsets"].__setitem__(0, 1),
                     ["offsets[0] is 1, expected 0", "1 images whose offsets span differs from height * width "
                      "(first: row 0, span {span0_minus_1}, shape {shape0})"]),
    "decreasing": (lambda f: f["offsets"].__setitem__(2, f["offsets"][0]),
                   ["1 offsets do not increase (first: row 1, offsets {offset1} -> 0)",
                    "2 images whose offsets span differs from height * width (first: row 1, span {minus_offset1}, "
                    "shape {shape1})"]),
    "last offset": (lambda f: f["offsets"].__setitem__(-1, f["offsets"][-1] - 1),
                    ["1 images whose offsets span differs from height * width (first: row 5, span {span5_minus_1}, "
                     "shape {shape5})", "offsets[6] is {pixels_minus_1} but dataset 'pixels' holds {pixels} pixels"]),
    "shorter side": (_first_row_taller, ["1 images whose shorter side is not 72 (first: row 0, shape {tall0})"]),
}


@pytest.mark.parametrize("case", GEOMETRY_CASES)
def test_bad_offsets_and_shapes_are_listed(out, case):
    shard = out / "aircraft/val-00000.h5"
    with h5py.File(shard, "r") as f:
        offsets, shapes = f["offsets"][:], f["shapes"][:]
    facts = {"span0_minus_1": offsets[1] - 1, "shape0": "x".join(map(str, shapes[0])), "offset1": offsets[1],
             "minus_offset1": -offsets[1], "shape1": "x".join(map(str, shapes[1])), "pixels": offsets[-1],
             "pixels_minus_1": offsets[-1] - 1, "tall0": f"{shapes[0].prod() // 36}x36",
             "span5_minus_1": offsets[6] - offsets[5] - 1, "shape5": "x".join(map(str, shapes[5]))}
    edit, expected = GEOMETRY_CASES[case]
    _edit_shard(shard, edit)
    problems = verify(out).problems
    assert f"{shard}: sha256 is" in problems[0] and len(problems) == 1 + len(expected)
    assert problems[1:] == [f"{shard}: {line.format(**facts)}" for line in expected]


def test_daimler_must_be_144_high_and_72_wide(out):
    shard = out / "daimlerpedcls/train-00000.h5"
    _edit_shard(shard, lambda f: f["shapes"].__setitem__(2, [72, 144]))
    assert f"{shard}: 1 images not 144x72 (HxW) like every daimlerpedcls image (first: row 2, shape 72x144)" \
        in verify(out).problems


def test_pixel_count_differs_from_the_manifest(out):
    shard = out / "dtd/val-00000.h5"
    with h5py.File(shard, "r") as f:
        pixels = len(f["pixels"])
    _edit_manifest(out, lambda m: m["domains"]["dtd"]["splits"]["val"]["shards"][0].update(num_pixels=pixels + 1))
    assert verify(out).problems == [f"{shard}: dataset 'pixels' is uint8 ({pixels}, 3), expected uint8 "
                                    f"({pixels + 1}, 3)"]


def test_old_format_is_refused_with_the_command_to_prepare_again(out, capsys):
    _edit_manifest(out, lambda m: m.update(format_version=1))
    assert main(["verify", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'manifest.json'}: field 'format_version' is 1, expected 2" in err
    assert "make prepare-data SOURCE=" in err and f"OUT={out}" in err


def test_manifest_of_another_geometry_is_reported(out):
    _edit_manifest(out, lambda m: m["domains"]["dtd"].update(short_side=64))
    assert f"{out / 'manifest.json'}: dtd: index/short_side are 4/64, expected 4/72" in verify(out).problems


def test_incomplete_domain_and_unlisted_files_are_reported(out, capsys):
    """Shards that match are not enough: a domain without all splits, or anything of an
    interrupted run, fails verify (exit 1)."""
    _edit_manifest(out, lambda m: m["domains"]["dtd"]["splits"].pop("test"))
    (out / "aircraft" / "val-00001.h5").write_bytes(b"")
    (out / "aircraft" / "val.progress.json").write_text("{}")
    (out / "imagenet12" / "train-00000.h5.0a1b2c3d.tmp").write_bytes(b"")
    assert verify(out).problems == [
        f"{out / 'manifest.json'}: dtd: incomplete, split test not prepared; run the preparation of dtd again "
        "to finish it",
        f"{out / 'imagenet12/train-00000.h5.0a1b2c3d.tmp'}: temporary file, left by an interrupted run",
        f"{out / 'aircraft/val.progress.json'}: progress file of an unfinished preparation",
        f"{out / 'aircraft/val-00001.h5'}: not listed in {out / 'manifest.json'}",
        f"{out / 'dtd/test-00000.h5'}: not listed in {out / 'manifest.json'}",
        f"{out / 'dtd/test-00001.h5'}: not listed in {out / 'manifest.json'}",
        f"{out / 'dtd/test-00002.h5'}: not listed in {out / 'manifest.json'}"]
    assert main(["verify", str(out)]) == 1
    assert "7 problems in" in capsys.readouterr().err
