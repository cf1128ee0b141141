"""Bad input stops with a PrepareError naming the file and the annotation entry, and
leaves no temporary, no manifest entry for the failed split and no shard holding the
bad image. (Shards of that split completed before the failure stay on disk, recorded
only in its progress file: a rerun after the fix reuses them.)"""
import json
import shutil

import pytest

from data_prep.__main__ import main
from data_prep import PrepareError, prepare, verify


def _edit_annotations(devkit, name, edit):
    path = devkit.root / "annotations" / name
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _missing_in_folder(devkit, make_tarballs, tmp_path):
    (devkit.root / "data/aircraft/test/000005.jpg").unlink()
    return devkit.parent


def _missing_in_tar(devkit, make_tarballs, tmp_path):
    return make_tarballs(devkit.root, tmp_path / "downloads", drop={"data/aircraft/test/000005.jpg"})


def _corrupt(devkit, make_tarballs, tmp_path):
    path = devkit.root / "data/aircraft/test/000005.jpg"
    path.write_bytes(path.read_bytes()[:300])
    return devkit.parent


def _wrong_size(devkit, make_tarballs, tmp_path):
    from PIL import Image
    Image.new("RGB", (80, 72)).save(devkit.root / "data/aircraft/test/000005.jpg")
    return devkit.parent


def _not_annotated(devkit, make_tarballs, tmp_path):
    shutil.copy(devkit.root / "data/aircraft/test/000005.jpg", devkit.root / "data/aircraft/test/999999.jpg")
    return devkit.parent


def _truncated(tarball, keep):
    def damage(devkit, make_tarballs, tmp_path):
        tarballs = make_tarballs(devkit.root, tmp_path / "downloads")
        data = (tarballs / tarball).read_bytes()
        (tarballs / tarball).write_bytes(data[:int(len(data) * keep)])
        return tarballs
    return damage


def _annotation_edit(name, edit):
    def damage(devkit, make_tarballs, tmp_path):
        _edit_annotations(devkit, name, edit)
        return devkit.parent
    return damage


ENTRY_5 = r"aircraft_test_stripped.json: data/aircraft/test/000005.jpg \(images\[4\], image_id 10206672\)"
DECODE_CASES = {  # name: (damage, message regex, failed domain/split, position of the bad image)
    "missing in folder": (_missing_in_folder, r"missing JPEG \S+/decathlon-1.0/data/aircraft/test/000005.jpg: "
                          r"file absent; entry \S+/" + ENTRY_5, ("aircraft", "test"), 4),
    "missing in tar": (_missing_in_tar, r"missing JPEG data/aircraft/test/000005.jpg: never seen in \S+/"
                       r"decathlon-1.0-data.tar.gz!aircraft.tar; entry \S+!decathlon-1.0/annotations/" + ENTRY_5,
                       ("aircraft", "test"), 4),
    "corrupt": (_corrupt, r"\S+/data/aircraft/test/000005.jpg: cannot decode JPEG \(.*\); entry \S+/" + ENTRY_5,
                ("aircraft", "test"), 4),
    "size mismatch": (_wrong_size, r"\S+/data/aircraft/test/000005.jpg: image is 80x72 \(WxH\) but the "
                      r"annotation says 107x72; entry \S+/" + ENTRY_5, ("aircraft", "test"), 4),
    "not annotated": (_not_annotated, r"\S+/data/aircraft/test/999999.jpg: image without annotation: "
                      r"\S+/aircraft_test_stripped.json lists no data/aircraft/test/999999.jpg",
                      ("aircraft", "test"), None),
    "truncated gz": (_truncated("decathlon-1.0-data.tar.gz", 0.1), r"\S+/decathlon-1.0-data.tar.gz!aircraft.tar: "
                     r"truncated or corrupt tarball.*member '", ("aircraft", "test"), None),
    "truncated tar": (_truncated("decathlon-1.0-data-imagenet.tar", 0.5), r"\S+/decathlon-1.0-data-imagenet.tar: "
                      r"truncated or corrupt tarball.*member 'data/imagenet12/", ("imagenet12", "train"), None),
}
ANNOTATION_CASES = {
    "image without annotation": (
        _annotation_edit("aircraft_train.json", lambda d: d["annotations"].pop(2)),
        r"aircraft_train.json: images\[2\] \(data/aircraft/train/000003.jpg, id 10000003\): has no annotation"),
    "category out of range": (
        _annotation_edit("aircraft_train.json", lambda d: d["annotations"][1].update(category_id=10000101)),
        r"aircraft_train.json: annotations\[1\] \(data/aircraft/train/000002.jpg\): field 'category_id' is "
        r"10000101, expected 10000001..10000100"),
    "duplicate image id": (
        _annotation_edit("aircraft_test_stripped.json", lambda d: d["images"][3].update(id=d["images"][2]["id"])),
        r"aircraft_test_stripped.json: images\[3\] \(data/aircraft/test/000004.jpg\): duplicate image id 10206670"),
}


def _split_in_manifest(out, domain, split):
    if not (out / "manifest.json").exists():
        return False
    return split in json.loads((out / "manifest.json").read_text())["domains"].get(domain, {}).get("splits", {})


@pytest.mark.parametrize("case", DECODE_CASES)
def test_bad_image_or_tarball(case, devkit, make_tarballs, leftovers, tmp_path):
    damage, message, (domain, split), position = DECODE_CASES[case]
    source, out = damage(devkit, make_tarballs, tmp_path), tmp_path / "out"
    with pytest.raises(PrepareError, match=message):
        prepare(source, out, domains=domain, shard_size=devkit.shard_size, progress=False)
    assert not leftovers(out) and not _split_in_manifest(out, domain, split)
    if position is not None:
        assert not (out / domain / f"{split}-{position // devkit.shard_size:05d}.h5").exists()


@pytest.mark.parametrize("case", ANNOTATION_CASES)
def test_bad_annotations_stop_before_any_shard(case, devkit, make_tarballs, leftovers, tmp_path):
    damage, message = ANNOTATION_CASES[case]
    out = tmp_path / "out"
    with pytest.raises(PrepareError, match=message):
        prepare(damage(devkit, make_tarballs, tmp_path), out, domains="aircraft", progress=False)
    assert not leftovers(out) and not list(out.rglob("*.h5")) and not (out / "manifest.json").exists()


def test_fixed_input_resumes_from_the_completed_shards(devkit, pristine, leftovers, tmp_path):
    out, path = tmp_path / "out", devkit.root / "data/aircraft/test/000005.jpg"
    path.unlink()
    with pytest.raises(PrepareError, match="missing JPEG"):
        prepare(devkit.parent, out, domains="aircraft", shard_size=devkit.shard_size, progress=False)
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("aircraft/test-*.h5")}
    assert set(kept) == {"test-00001.h5", "test-00002.h5"}
    shutil.copy(pristine.root / "data/aircraft/test/000005.jpg", path)
    prepare(devkit.parent, out, domains="aircraft", shard_size=devkit.shard_size, progress=False)
    assert all((out / "aircraft" / name).stat().st_mtime_ns == mtime for name, mtime in kept.items())
    assert _split_in_manifest(out, "aircraft", "test") and verify(out).ok and not leftovers(out)


def test_cli_prints_the_error_and_exits_2(devkit, tmp_path, capsys):
    (devkit.root / "data/dtd/val/000002.jpg").unlink()
    assert main(["prepare", "--source", str(devkit.parent), "--out", str(tmp_path / "out"),
                 "--domains", "dtd", "--no-test-labels", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: missing JPEG ") and "dtd_val.json: data/dtd/val/000002.jpg" in err
    assert "Traceback" not in err
