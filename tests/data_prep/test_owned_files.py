"""Preparation deletes only what its records name, refuses a folder holding a file it would
replace but did not write, and keeps a second preparation out of a folder in use."""
import json
import os
import shutil

import pytest

from data_prep.__main__ import main
from data_prep import PrepareError, prepare, verify
from data_prep.shards import ShardWriter


def _prepare(devkit, out, domains="aircraft", **options):
    return prepare(devkit.parent, out, domains=domains, shard_size=devkit.shard_size, progress=False, **options)


def test_files_of_the_user_survive_a_preparation(devkit, tmp_path):
    """*.tmp names preparation never makes are not deleted: not at the top, not in a domain folder."""
    out = tmp_path / "out"
    mine = {out / "notes.tmp": b"my notes", out / "aircraft" / "notes.tmp": b"more notes",
            out / "aircraft" / "train-00002.h5.tmp": b"a file of mine", out / "aircraft" / "mine.h5": b"mine"}
    for path, data in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    _prepare(devkit, out)
    assert {path: path.read_bytes() for path in mine} == mine
    _prepare(devkit, out)  # a rerun too
    assert {path: path.read_bytes() for path in mine} == mine


@pytest.mark.parametrize("name", ["train-00000.h5", "test-00099.h5"])
def test_unrecorded_shard_file_is_refused_by_name(devkit, tmp_path, capsys, name):
    out = tmp_path / "out"
    (out / "aircraft").mkdir(parents=True)
    (out / "aircraft" / name).write_bytes(b"not a shard of the preparation")
    with pytest.raises(PrepareError, match=rf"{out / 'aircraft' / name}: neither .*manifest.json nor "
                                           r".*progress.json lists this file.*move it out of .*another --out"):
        _prepare(devkit, out)
    assert (out / "aircraft" / name).read_bytes() == b"not a shard of the preparation"
    assert main(["prepare", "--source", str(devkit.parent), "--out", str(out), "--domains", "aircraft",
                 "--no-test-labels", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out / 'aircraft' / name}: neither") and err.count("\n") == 1
    assert [p.name for p in out.rglob("*.h5")] == [name]


def test_unrecorded_shard_beside_a_manifest_is_refused(prepared, pristine, tmp_path):
    """A rebuild (here: another shard size) replaces the shards the manifest lists, not a stranger."""
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    (out / "dtd" / "val-00042.h5").write_bytes(b"mine")
    before = {p: p.read_bytes() for p in out.glob("dtd/*.h5")}
    with pytest.raises(PrepareError, match=r"dtd/val-00042.h5: neither"):
        prepare(pristine.parent, out, domains="dtd", shard_size=4, progress=False)
    assert {p: p.read_bytes() for p in out.glob("dtd/*.h5")} == before
    (out / "dtd" / "val-00042.h5").unlink()
    prepare(pristine.parent, out, domains="dtd", shard_size=4, progress=False)
    assert [s["num_images"] for s in json.loads((out / "manifest.json").read_text())
            ["domains"]["dtd"]["splits"]["val"]["shards"]] == [4, 2]
    assert verify(out).ok  # the old shards, listed in the manifest, were removed


def test_progress_file_not_written_by_preparation_is_refused(devkit, tmp_path):
    out = tmp_path / "out"
    (out / "aircraft").mkdir(parents=True)
    (out / "aircraft" / "val.progress.json").write_text("my progress")
    with pytest.raises(PrepareError, match=r"aircraft/val.progress.json: not a progress file that preparation "
                                           r"wrote"):
        _prepare(devkit, out)
    assert (out / "aircraft" / "val.progress.json").read_text() == "my progress"


def _killed_run(devkit, out, monkeypatch):
    """A run of aircraft that stops as if killed: its temporaries stay where they are."""
    finalise, calls = ShardWriter.finalise, []

    def kill_at_third_shard(self, *args):
        calls.append(self.file)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return finalise(self, *args)

    monkeypatch.setattr(ShardWriter, "finalise", kill_at_third_shard)
    monkeypatch.setattr(ShardWriter, "discard", lambda self: None)
    with pytest.raises(KeyboardInterrupt):
        prepare(devkit.parent, out, domains="aircraft", shard_size=2, progress=False)
    monkeypatch.undo()
    (out / ".manifest.json.k2j4h5l_.tmp").write_text("{")  # as a kill within the manifest's rewrite leaves it


def test_killed_run_is_reported_by_verify_and_cleaned_by_any_rerun(devkit, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    _killed_run(devkit, out, monkeypatch)
    shard_temporary, = out.glob("aircraft/*.tmp")
    assert shard_temporary.name.startswith("train-00002.h5.")
    problems = verify(out).problems
    assert f"{out / 'manifest.json'}: aircraft: incomplete, splits train, val, test not prepared; run the " \
           "preparation of aircraft again to finish it" in problems
    assert f"{shard_temporary}: temporary file, left by an interrupted run" in problems
    assert f"{out / '.manifest.json.k2j4h5l_.tmp'}: temporary file, left by an interrupted run" in problems
    assert f"{out / 'aircraft/train.progress.json'}: progress file of an unfinished preparation" in problems
    assert f"{out / 'aircraft/train-00000.h5'}: not listed in {out / 'manifest.json'}" in problems
    assert main(["verify", str(out)]) == 1
    assert "problems in" in capsys.readouterr().err
    # A run for another domain removes the temporaries the records name, and keeps aircraft's progress.
    prepare(devkit.parent, out, domains="dtd", shard_size=2, progress=False)
    assert not list(out.rglob("*.tmp"))
    assert (out / "aircraft/train.progress.json").exists() and (out / "aircraft/train-00001.h5").exists()
    assert not verify(out).ok
    prepare(devkit.parent, out, domains="aircraft", shard_size=2, progress=False)
    assert verify(out).ok and (out / ".lock").exists()


def test_second_preparation_into_the_same_folder_is_refused(devkit, tmp_path, monkeypatch, capsys):
    out, finalise, answers = tmp_path / "out", ShardWriter.finalise, []

    def second_preparation(self, *args):
        if not answers:
            answers.append(main(["prepare", "--source", str(devkit.parent), "--out", str(out), "--domains", "dtd",
                                 "--no-test-labels", "--quiet"]))
        return finalise(self, *args)

    monkeypatch.setattr(ShardWriter, "finalise", second_preparation)
    _prepare(devkit, out)
    assert answers == [2]
    err = capsys.readouterr().err
    assert f"error: preparation folder {out} is in use by pid {os.getpid()} on " in err and err.count("\n") == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["domains"]) == ["aircraft"] and verify(out).ok
