"""Preparation of real annotation entries: ids, labels, geometry, manifest, resume."""
import hashlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from data_prep.__main__ import main
from data_prep import PrepareError, prepare, verify
from data_prep.shards import ShardWriter
from decathlon.data import ManifestVersionError, SPLITS, get_domain


def _expected_image(path):
    """The documented geometry, computed independently: the whole image as the public codes
    loaded it, convert("RGB") then torchvision's Resize(72) (which keeps a 72-px image)."""
    with Image.open(path) as image:
        return np.asarray(transforms.Resize(72)(image.convert("RGB")))


@pytest.mark.parametrize("domain", ["aircraft", "daimlerpedcls", "dtd", "imagenet12"])
def test_shards_hold_the_whole_annotated_images_in_order(pristine, prepared, read_split, domain):
    for split in SPLITS:
        source = pristine.files[f"{domain}_{split}{'_stripped' if split == 'test' else ''}.json"]
        images, labels, ids = read_split(prepared, domain, split)
        assert ids.tolist() == [image["id"] for image in source["images"]]
        if split == "test":
            assert (labels == -1).all()
        else:
            offset = get_domain(domain).category_offset + 1
            assert labels.tolist() == [a["category_id"] - offset for a in source["annotations"]]
        for stored, entry in zip(images, source["images"], strict=True):
            assert stored.dtype == np.uint8 and min(stored.shape[:2]) == 72
            if min(entry["width"], entry["height"]) == 72:
                assert stored.shape == (entry["height"], entry["width"], 3)  # whole, as released
            np.testing.assert_array_equal(stored, _expected_image(pristine.root / entry["file_name"]))


def test_geometry_of_the_odd_sizes(prepared, pristine, read_split):
    """daimlerpedcls is kept whole (144 high, 72 wide); 73-px aircraft images shrink to a
    72 px shorter side, their width scaled by 72/73 and floored (torchvision's Resize)."""
    images, _, _ = read_split(prepared, "daimlerpedcls", "test")
    assert {image.shape for image in images} == {(144, 72, 3)}
    assert all((image[..., 0] == image[..., 2]).all() for image in images)  # grey -> RGB
    entries = pristine.files["aircraft_test.json"]["images"]
    images, _, _ = read_split(prepared, "aircraft", "test")
    tall = [(image.shape, entry["width"]) for image, entry in zip(images, entries) if entry["height"] == 73]
    assert len(tall) == 3 and all(shape == (72, int(width * 72 / 73), 3) for shape, width in tall)
    assert max(image.shape[1] for image in images) > 110  # the wide ones keep their width


def test_manifest_describes_the_split(prepared, pristine, read_split):
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["synthetic"] is False
    assert manifest["source"] == str(pristine.parent)  # the path given, resolved
    aircraft = manifest["domains"]["aircraft"]
    real_names = [c["name"] for c in pristine.files["aircraft_test.json"]["categories"]]
    assert aircraft["num_classes"] == 100 and aircraft["class_names"] == real_names
    assert aircraft["short_side"] == 72 and "image_hw" not in aircraft
    assert aircraft["mean"] == list(get_domain("aircraft").mean) and "no crop" in aircraft["storage"]
    test = aircraft["splits"]["test"]
    raw = (pristine.root / "annotations" / "aircraft_test_stripped.json").read_bytes()
    assert test["annotation_file"] == "aircraft_test_stripped.json"
    assert test["annotation_sha256"] == hashlib.sha256(raw).hexdigest()
    assert test["labels_known"] is False and test["num_images"] == 20
    assert [s["num_images"] for s in test["shards"]] == [8, 8, 4]
    assert [s["file"] for s in test["shards"]] == [f"aircraft/test-{i:05d}.h5" for i in range(3)]
    images, _, _ = read_split(prepared, "aircraft", "test")
    sizes = [image.shape[0] * image.shape[1] for image in images]
    assert [s["num_pixels"] for s in test["shards"]] == [sum(sizes[:8]), sum(sizes[8:16]), sum(sizes[16:])]
    for shard in test["shards"]:
        assert hashlib.sha256((prepared / shard["file"]).read_bytes()).hexdigest() == shard["sha256"]
    assert aircraft["splits"]["train"]["num_images"] == pristine.train_val_size
    assert verify(prepared).ok


def test_old_format_folder_is_prepared_again(prepared, pristine, tmp_path, read_split):
    """A folder of format 1 (centre-cropped squares) is rebuilt by the same command."""
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(ManifestVersionError, match="make prepare-data SOURCE="):
        verify(out)
    prepare(pristine.parent, out, domains="dtd", shard_size=pristine.shard_size, progress=False)
    rebuilt = json.loads((out / "manifest.json").read_text())
    assert rebuilt["format_version"] == 2 and list(rebuilt["domains"]) == ["dtd"] and verify(out).ok
    assert all((a == b).all() for a, b in zip(read_split(out, "dtd", "val")[0], read_split(prepared, "dtd", "val")[0]))


def test_test_labels_from_the_real_release(pristine, tmp_path, read_split):
    out = tmp_path / "out"
    prepare(pristine.parent, out, domains="aircraft,imagenet12", test_labels=pristine.labels_zip,
            shard_size=pristine.shard_size, progress=False)
    for domain in ("aircraft", "imagenet12"):
        _, labels, ids = read_split(out, domain, "test")
        real = pristine.files[f"{domain}_test.json"]
        offset = get_domain(domain).category_offset + 1
        assert ids.tolist() == [a["image_id"] for a in real["annotations"]]
        assert labels.tolist() == [a["category_id"] - offset for a in real["annotations"]]
        entry = json.loads((out / "manifest.json").read_text())["domains"][domain]["splits"]["test"]
        assert entry["labels_known"] and entry["annotation_file"] == f"{domain}_test.json"
    assert verify(out).ok


def test_test_labels_must_list_the_same_images(devkit, tmp_path):
    labelled = devkit.parent / "labels"
    labelled.mkdir()
    data = json.loads(json.dumps(devkit.files["aircraft_test.json"]))
    data["images"][3], data["images"][4] = data["images"][4], data["images"][3]
    (labelled / "aircraft_test.json").write_text(json.dumps(data))
    with pytest.raises(PrepareError, match=r"aircraft_test.json does not list the same images .* images\[3\]"):
        prepare(devkit.parent, tmp_path / "out", domains="aircraft", test_labels=labelled, progress=False)


def test_cli_prepare_then_verify(pristine, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["prepare", "--source", str(pristine.root), "--out", str(out), "--domains", "dtd",
                 "--workers", "1", "--shard-size", "4", "--no-test-labels", "--quiet"]) == 0
    assert main(["verify", str(out)]) == 0
    assert "ok       dtd/test: 20 images in 5 shards (no labels)" in capsys.readouterr().out
    assert main(["prepare", "--source", str(tmp_path / "nowhere"), "--out", str(out), "--quiet"]) == 2
    assert "source folder not found" in capsys.readouterr().err


def test_cli_attaches_the_packaged_test_labels_by_default(pristine, tmp_path, capsys):
    """Real data gets the public labels_test.zip the package ships unless told otherwise; the
    fixture's test split is a sample of the real one, so the packaged file is refused by name."""
    out = tmp_path / "out"
    assert main(["prepare", "--source", str(pristine.root), "--out", str(out), "--domains", "dtd", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "decathlon/resources/labels_test.zip!dtd_test.json does not list the same images" in err
    assert main(["prepare", "--source", str(pristine.root), "--test-labels", "x.zip", "--no-test-labels"]) == 2
    assert capsys.readouterr().err.strip() == "error: --test-labels and --no-test-labels exclude each other"


def test_cli_without_source_prepares_synthetic_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--domains", "svhn", "--scale", "0.05", "--quiet"]) == 0
    manifest = json.loads((tmp_path / "data/synthetic/manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["domains"]["svhn"]["splits"]["test"]["labels_known"]
    assert main(["verify", "data/synthetic"]) == 0

# What versions before the bilinear resize recorded: their shards hold Lanczos-resized 73-px images.
LANCZOS_STORAGE = ("decoded to RGB uint8 (grey: three equal channels) and stored whole with a 72 px shorter side: "
                   "images whose shorter side s is not 72 (a few 73-px aircraft and dtd images) are resized with "
                   "PIL Lanczos to 72 x round(long * 72 / s); no crop")


def test_shards_of_the_earlier_lanczos_resize_are_prepared_again(prepared, pristine, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["domains"]["aircraft"]["storage"] = LANCZOS_STORAGE
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = {domain: _mtimes(out, domain) for domain in ("aircraft", "dtd")}
    prepare(pristine.parent, out, domains=("aircraft", "dtd"), shard_size=pristine.shard_size, progress=False)
    after = {domain: _mtimes(out, domain) for domain in ("aircraft", "dtd")}
    assert all(before["aircraft"][name] != after["aircraft"][name] for name in before["aircraft"])
    assert after["dtd"] == before["dtd"]   # prepared as now: kept
    assert json.loads((out / "manifest.json").read_text())["domains"]["aircraft"]["storage"] != LANCZOS_STORAGE
    assert verify(out).ok


def _mtimes(out, domain="aircraft"):
    return {p.name: p.stat().st_mtime_ns for p in (out / domain).glob("*.h5")}


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_rerun_rebuilds_only_the_damaged_shard(prepared, pristine, tmp_path, leftovers, damage):
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    before, original = _mtimes(out), (out / "aircraft/test-00001.h5").read_bytes()
    if damage == "delete":
        (out / "aircraft/test-00001.h5").unlink()
    else:
        with open(out / "aircraft/test-00001.h5", "r+b") as f:
            f.seek(-100, 2)
            f.write(b"\xff")
    prepare(pristine.parent, out, domains=pristine.domains, shard_size=pristine.shard_size, progress=False)
    after = _mtimes(out)
    assert {name for name in before if before[name] != after[name]} == {"test-00001.h5"}
    assert (out / "aircraft/test-00001.h5").read_bytes() == original
    assert verify(out).ok and not leftovers(out) and not list(out.rglob("*.progress.json"))


def test_interrupted_run_leaves_no_temporaries_and_resumes(pristine, prepared, tmp_path, monkeypatch,
                                                           read_split, leftovers):
    out, finalise, calls = tmp_path / "out", ShardWriter.finalise, []

    def interrupt_third_shard(self, *args):
        calls.append(self.file)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return finalise(self, *args)

    monkeypatch.setattr(ShardWriter, "finalise", interrupt_third_shard)
    with pytest.raises(KeyboardInterrupt):
        prepare(pristine.parent, out, domains="aircraft", shard_size=2, progress=False)
    assert calls == ["aircraft/train-00000.h5", "aircraft/train-00001.h5", "aircraft/train-00002.h5"]
    assert not leftovers(out) and not (out / "aircraft/train-00002.h5").exists()
    assert json.loads((out / "manifest.json").read_text())["domains"]["aircraft"]["splits"] == {}
    kept = _mtimes(out)
    assert set(kept) == {"train-00000.h5", "train-00001.h5"}
    monkeypatch.undo()
    prepare(pristine.parent, out, domains="aircraft", shard_size=2, progress=False)
    assert all(_mtimes(out)[name] == mtime for name, mtime in kept.items())
    assert verify(out).ok and not leftovers(out)
    images, labels, ids = read_split(out, "aircraft", "train")
    reference = read_split(prepared, "aircraft", "train")
    assert (labels == reference[1]).all() and (ids == reference[2]).all()
    assert all((a == b).all() for a, b in zip(images, reference[0], strict=True))


def test_shard_writer_refuses_an_image_of_another_size(tmp_path):
    shapes = np.array([[72, 100], [144, 72]])
    writer = ShardWriter(tmp_path, get_domain("aircraft"), "train", 0, 0, np.array([10000001, 10000002]),
                         np.array([0, 1]), shapes, "0a1b2c3d")
    try:
        with pytest.raises(PrepareError, match=r"train-00000\.h5\.0a1b2c3d\.tmp: image 1 is uint8 \(72, 144, 3\), "
                                               r"expected uint8 \(144, 72, 3\)"):
            writer.write(1, np.zeros((72, 144, 3), np.uint8))
    finally:
        writer.discard()
    assert not list(tmp_path.rglob("*.tmp"))
