"""What a job refuses before it trains or writes anything, and the loss check while it trains."""
import json
import shutil

import h5py
import pytest

from decathlon.benchmark import hparams, joint_hparams, pretrain_hparams
from decathlon.files import write_json_atomic
from decathlon.data import ShardError
from decathlon.engine import JobSpec, distributed, pretrain, run_job


def _spec(data, backbone, tiny_hparams, out, method="finetune", domain="dtd", **hp_changes):
    hp = hparams(method, domain, "cpu_demo", tiny_hparams)
    hp.update(hp_changes)
    return JobSpec(method=method, domain=domain, data=str(data), out=str(out), hparams=hp,
                   backbone=str(backbone), device="cpu", progress=False)


@pytest.fixture
def data(tiny_decathlon, tmp_path):
    """A copy of the tiny decathlon that a test may damage."""
    copy = tmp_path / "data"
    shutil.copytree(tiny_decathlon, copy, ignore=shutil.ignore_patterns(".verified.json", ".lock"))
    return copy


def test_steps_per_epoch_follow_the_loader():
    from decathlon.engine import steps_per_epoch

    assert steps_per_epoch(60, 64, 1, drop_last=True) == 0
    assert steps_per_epoch(60, 64, 1, drop_last=False) == 1   # the partial batch is kept
    assert steps_per_epoch(130, 64, 2, drop_last=True) == 1 and steps_per_epoch(130, 64, 2, drop_last=False) == 2
    assert steps_per_epoch(100, 64, 2, drop_last=True) == 0


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, r"'epochs' is 0: a training job needs a whole number of epochs, at least 1"),
    ({"epochs": -2}, r"'epochs' is -2"),
    ({"epochs": 1.5}, r"'epochs' is 1.5"),
    ({"batch_size": 64}, r"dtd/train has 24 training images, fewer than one batch \(batch_size 64"),
])
def test_a_job_that_would_train_nothing_is_refused_before_writing(tiny_decathlon, tiny_backbone, tiny_hparams,
                                                                  tmp_path, changes, message):
    out = tmp_path / "job"
    with pytest.raises(ValueError, match=message):
        run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, out, **changes))
    assert not out.exists()


def test_joint_and_pretraining_jobs_are_refused_per_domain(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    hp = joint_hparams("spottune_joint", ("svhn", "dtd"), "cpu_demo", dict(tiny_hparams, batch_size=25))
    spec = JobSpec("spottune_joint", "svhn+dtd", str(tiny_decathlon), str(tmp_path / "joint"), hp,
                   backbone=str(tiny_backbone), device="cpu", progress=False, domains=("svhn", "dtd"))
    with pytest.raises(ValueError, match=r"dtd/train has 24 training images.*batch_size 25"):   # svhn has 30
        run_job(spec)
    with pytest.raises(ValueError, match=r"imagenet12/train has 120 training images.*batch_size 128"):
        hp = pretrain_hparams("cpu_demo", dict(tiny_hparams, batch_size=128))
        pretrain(tiny_decathlon, tmp_path / "pretrain", hp, {}, device="cpu", progress=False)
    assert not (tmp_path / "joint").exists() and not (tmp_path / "pretrain").exists()


def test_a_negative_seed_is_refused(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    spec = _spec(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path / "job")
    spec.seed = -3
    with pytest.raises(ValueError, match=r"seed -3: expected an integer >= 0"):
        run_job(spec)


def test_a_diverged_job_stops_naming_the_epoch_and_is_not_finished(tiny_decathlon, tiny_backbone, tiny_hparams,
                                                                    tmp_path):
    out = tmp_path / "job"
    spec = _spec(tiny_decathlon, tiny_backbone, tiny_hparams, out, batch_size=8, lr=1e30)
    with pytest.raises(ValueError, match=r"training diverged at epoch 1 \(mean loss nan\)"):
        run_job(spec)
    assert not (out / "done").exists() and not (out / "final.json").exists()
    assert not (out / "checkpoint.pt").exists() and not (out / "record.jsonl").exists()


def test_records_and_final_json_hold_null_where_a_value_is_not_finite(tmp_path):
    from decathlon.engine.job_checks import finite_or_null

    line = {"epoch": 1, "val_accuracy": float("nan"), "stats": [1.0, float("inf")], "lr": 0.1}
    assert json.loads(json.dumps(finite_or_null(line), allow_nan=False)) == {
        "epoch": 1, "val_accuracy": None, "stats": [1.0, None], "lr": 0.1}
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "final.json", {"accuracy": float("nan")})
    assert not (tmp_path / "final.json").exists()


def _flip_pixel_byte(path):
    with h5py.File(path, "r") as f:
        offset = f["pixels"].id.get_offset()
    with open(path, "r+b") as f:
        f.seek(offset + 5)
        byte = f.read(1)[0]
        f.seek(offset + 5)
        f.write(bytes([byte ^ 1]))


def _change(path, dataset, change):
    with h5py.File(path, "a") as f:
        f[dataset][0] = change(f[dataset][0])


@pytest.mark.parametrize("damage", [
    _flip_pixel_byte,
    lambda path: _change(path, "labels", lambda label: (label + 1) % 8),   # another class of the 8
    lambda path: _change(path, "image_ids", lambda image_id: image_id + 1000),
], ids=["pixel", "label", "image_id"])
def test_a_shard_changed_after_preparation_is_refused_naming_it(data, tiny_backbone, tiny_hparams, tmp_path,
                                                                damage):
    damage(data / "dtd" / "train-00000.h5")
    with pytest.raises(ShardError, match=r"dtd/train-00000\.h5: sha256 is [0-9a-f]{64}, .*manifest\.json says"):
        run_job(_spec(data, tiny_backbone, tiny_hparams, tmp_path / "job"))
    assert not (tmp_path / "job").exists()


def _rehash_in_manifest(data, file):
    from decathlon.files import sha256_file

    manifest = json.loads((data / "manifest.json").read_text())
    domain, name = file.split("/")
    for split in manifest["domains"][domain]["splits"].values():
        for record in split["shards"]:
            if record["file"] == file:
                record["sha256"] = sha256_file(data / file)
    write_json_atomic(data / "manifest.json", manifest)
    return manifest


def test_labels_beyond_the_manifest_classes_are_refused_naming_the_shard(data, tiny_backbone, tiny_hparams,
                                                                         tmp_path):
    _change(data / "dtd" / "val-00000.h5", "labels", lambda label: 8)   # dtd has 8 classes: 0..7
    manifest = _rehash_in_manifest(data, "dtd/val-00000.h5")   # prepared so: only the content check sees it
    with pytest.raises(ShardError, match=r"dtd/val-00000\.h5: 1 labels outside 0\.\.7 \(first: row 0, label 8\) "
                                         r"\(dtd/val: num_classes 8"):
        run_job(_spec(data, tiny_backbone, tiny_hparams, tmp_path / "a"))
    _change(data / "dtd" / "val-00000.h5", "labels", lambda label: 0)
    manifest = _rehash_in_manifest(data, "dtd/val-00000.h5")
    manifest["domains"]["dtd"]["num_classes"] = 5   # fewer than the labels the shards hold
    write_json_atomic(data / "manifest.json", manifest)
    with pytest.raises(ShardError, match=r"dtd/train-00000\.h5: \d+ labels outside 0\.\.4 .*num_classes 5"):
        run_job(_spec(data, tiny_backbone, tiny_hparams, tmp_path / "b"))


def test_verified_shards_are_not_hashed_again_until_they_change(data, monkeypatch):
    import decathlon.data.shard_checks as shard_checks
    from decathlon.data import verify_split_shards

    hashed = []
    real = shard_checks.sha256_file
    monkeypatch.setattr(shard_checks, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    manifest = json.loads((data / "manifest.json").read_text())
    verify_split_shards(data, manifest, "dtd", ("train", "val"))
    assert sorted(hashed) == ["train-00000.h5", "val-00000.h5"]
    verify_split_shards(data, manifest, "dtd", ("train", "val"))
    assert len(hashed) == 2   # remembered in .verified.json
    _flip_pixel_byte(data / "dtd" / "val-00000.h5")
    with pytest.raises(ShardError, match="val-00000.h5: sha256 is"):
        verify_split_shards(data, manifest, "dtd", ("train", "val"))
    assert hashed[2:] == ["val-00000.h5"]


def test_a_read_only_data_folder_is_checked_but_not_remembered(data, monkeypatch):
    import decathlon.data.shard_checks as shard_checks
    from decathlon.data import verify_split_shards

    def refuse(path, content):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(shard_checks, "write_bytes_atomic", refuse)
    verify_split_shards(data, json.loads((data / "manifest.json").read_text()), "dtd", ("train",))
    assert not (data / ".verified.json").exists()


def test_devices_other_than_auto_cpu_cuda_are_refused():
    with pytest.raises(ValueError, match=r"--device toaster: expected auto, cpu, cuda or cuda:N"):
        distributed.resolve_device("toaster")
    assert distributed.resolve_device("cpu").type == "cpu"
    if not distributed.torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"--device cuda:0: no CUDA device is available here"):
            distributed.resolve_device("cuda:0")
