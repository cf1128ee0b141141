"""The tarball source: streamed, shuffled members, identical shards, skipped decoding on rerun."""
import json
import shutil
import tarfile

import pytest

from data_prep import PrepareError, preparation as prepare_module, prepare, verify
from data_prep.sources import Source, read_test_labels


def _manifest(out):
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["source"]
    return manifest


def test_tarballs_give_byte_identical_shards(pristine, prepared, make_tarballs, tmp_path, monkeypatch):
    tarballs = make_tarballs(pristine.root, tmp_path / "downloads", inner_prefix="decathlon-1.0/data/")
    monkeypatch.setattr(tarfile.TarFile, "extractall", None)  # streaming only, never extracting
    out = tmp_path / "out"
    prepare(tarballs, out, domains=pristine.domains, shard_size=pristine.shard_size, progress=False)
    assert _manifest(out) == _manifest(prepared)
    for shard in sorted(prepared.rglob("*.h5")):
        assert (out / shard.relative_to(prepared)).read_bytes() == shard.read_bytes(), shard
    assert not list(tmp_path.joinpath("downloads").glob("decathlon-1.0*/"))  # nothing extracted


def test_rerun_on_tarballs_streams_but_decodes_only_missing_shards(pristine, make_tarballs, tmp_path,
                                                                   monkeypatch):
    tarballs = make_tarballs(pristine.root, tmp_path / "downloads")
    out = tmp_path / "out"
    prepare(tarballs, out, domains="aircraft,imagenet12", shard_size=pristine.shard_size, progress=False)
    (out / "aircraft/test-00002.h5").unlink()
    (out / "imagenet12/val-00000.h5").unlink()
    decoded, tasks = [], prepare_module._decode_tasks

    def counting_tasks(*args):
        for task in tasks(*args):
            decoded.append(task.key)
            yield task

    monkeypatch.setattr(prepare_module, "_decode_tasks", counting_tasks)
    prepare(tarballs, out, domains="aircraft,imagenet12", shard_size=pristine.shard_size, progress=False)
    # aircraft test shard 2 holds positions 16..19; imagenet12 val has 6 images in one shard
    assert sorted(decoded) == [("test", p) for p in range(16, 20)] + [("val", p) for p in range(6)]
    assert verify(out).ok


@pytest.mark.parametrize("given", ["parent", "root"])
def test_extracted_folder_or_its_parent(pristine, given):
    source = Source(pristine.parent if given == "parent" else pristine.root, ("aircraft",))
    assert source.root == pristine.root and not source.synthetic
    raw, origin = source.annotation("aircraft_train.json")
    assert origin.endswith("annotations/aircraft_train.json") and json.loads(raw)["images"]


def test_synthetic_marker_in_devkit(pristine, make_tarballs, tmp_path):
    (tmp_path / "extracted").mkdir()
    root = tmp_path / "extracted/decathlon-1.0"
    shutil.copytree(pristine.root, root)
    (root / "SYNTHETIC.json").write_text("{}")
    tarballs = make_tarballs(root, tmp_path / "downloads")
    with tarfile.open(tarballs / "decathlon-1.0-devkit.tar.gz", "w:gz") as devkit:
        devkit.add(root / "annotations", arcname="decathlon-1.0/annotations")
        devkit.add(root / "SYNTHETIC.json", arcname="decathlon-1.0/SYNTHETIC.json")
    assert Source(tarballs, ("dtd",)).synthetic and Source(root, ("dtd",)).synthetic


def test_member_outside_its_domain_is_refused(pristine, make_tarballs, tmp_path):
    tarballs = make_tarballs(pristine.root, tmp_path / "downloads", imagenet_prefix="stuff/")
    with pytest.raises(PrepareError, match=r"decathlon-1.0-data-imagenet.tar!stuff/imagenet12/.*\.jpg: "
                                           r"unexpected member, expected imagenet12/<split>/NNNNNN.jpg"):
        prepare(tarballs, tmp_path / "out", domains="imagenet12", progress=False)


def test_missing_parts_are_named(pristine, make_tarballs, tmp_path):
    root = tmp_path / "extracted/decathlon-1.0"
    shutil.copytree(pristine.root, root, ignore=lambda folder, names: ["dtd"] if folder.endswith("data") else [])
    tarballs = make_tarballs(root, tmp_path / "downloads")
    with pytest.raises(PrepareError, match=r"data.tar.gz: has no inner tar dtd.tar"):
        prepare(tarballs, tmp_path / "out", domains="dtd", progress=False)
    (tarballs / "decathlon-1.0-data-imagenet.tar").unlink()
    with pytest.raises(PrepareError, match=r"found neither .*data/imagenet12 nor decathlon-1.0-data-imagenet.tar"):
        Source(tarballs, ("imagenet12",))


def test_test_labels_from_zip_or_folder(pristine, tmp_path):
    from_zip = read_test_labels(pristine.labels_zip, "dtd")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/dtd_test.json").write_text(json.dumps(pristine.files["dtd_test.json"]))
    from_folder = read_test_labels(tmp_path / "labels", "dtd")
    assert from_zip.labels_known and (from_zip.labels == from_folder.labels).all()
    with pytest.raises(PrepareError, match=r"labels_test.zip: has no svhn_test.json"):
        read_test_labels(pristine.labels_zip, "svhn")
