"""ShardLoader's errors: each names the file, what is wrong and says how to fix it."""
import json
import re

import h5py
import numpy as np
import pytest

from decathlon.data import ManifestError, ManifestVersionError, ShardError, ShardLoader
from decathlon.files import write_json_atomic


def test_read_error_in_the_prefetch_thread_reaches_the_caller(make_loader, prepared):
    loader = make_loader(prepared, resident=False)
    (prepared / "aircraft" / "train-00001.h5").unlink()
    with pytest.raises(OSError):
        list(loader)


def test_missing_manifest_says_to_prepare_data(make_loader, tmp_path):
    with pytest.raises(ManifestError, match=r"manifest\.json.*make prepare-data"):
        make_loader(tmp_path)


def test_old_format_says_to_prepare_again(make_loader, prepared):
    manifest = json.loads((prepared / "manifest.json").read_text())
    write_json_atomic(prepared / "manifest.json", {**manifest, "format_version": 1, "synthetic": False,
                                                   "source": "/data/downloads"})
    with pytest.raises(ManifestVersionError, match=rf"{re.escape(str(prepared / 'manifest.json'))}: field "
                       rf"'format_version' is 1, expected 2 .*make prepare-data SOURCE=/data/downloads "
                       rf"OUT={re.escape(str(prepared))}$"):
        make_loader(prepared)
    write_json_atomic(prepared / "manifest.json", {**manifest, "format_version": 1})  # synthetic: no SOURCE
    with pytest.raises(ManifestVersionError, match=rf"make prepare-data OUT={re.escape(str(prepared))}$"):
        make_loader(prepared)


def test_missing_shard_is_named(make_loader, prepared):
    (prepared / "aircraft" / "train-00002.h5").unlink()
    with pytest.raises(ShardError, match=r"train-00002\.h5.*missing.*make prepare-data"):
        make_loader(prepared)


def test_unprepared_split_is_named(prepared):
    with pytest.raises(ManifestError, match=r"'val'.*not prepared.*make prepare-data"):
        ShardLoader(prepared, "aircraft", "val", 4, train=False, protocol="spottune", shuffle=False, seed=0,
                    drop_last=False, device="cpu")


@pytest.mark.parametrize("dataset,bad,message", [
    ("pixels", lambda n: np.zeros((n, 3), np.float32), r"'pixels' is float32"),
    ("pixels", lambda n: np.zeros((n - 1, 3), np.uint8), r"'pixels' is uint8 \(\d+, 3\), the manifest implies "
                                                         r"uint8 \(\d+, 3\)"),
    ("offsets", lambda n: np.zeros(7, np.int64), r"'offsets' is int64 \(7,\), the manifest implies int64 \(8,\)"),
    ("shapes", lambda n: np.zeros((7, 3), np.int64), r"'shapes' is int64 \(7, 3\)"),
    ("labels", lambda n: np.zeros(7, np.int32), r"'labels' is int32"),
    ("image_ids", lambda n: np.zeros(6, np.int64), r"'image_ids' is int64 \(6,\)"),
])
def test_shard_not_as_the_manifest_says(make_loader, prepared, dataset, bad, message):
    with h5py.File(prepared / "aircraft" / "train-00000.h5", "a") as f:
        pixels = len(f["pixels"])
        del f[dataset]
        f[dataset] = bad(pixels)
    with pytest.raises(ShardError, match=r"train-00000\.h5.*" + message):
        make_loader(prepared)


def test_v1_shard_under_a_v2_manifest_is_named(make_loader, prepared):
    with h5py.File(prepared / "aircraft" / "train-00001.h5", "a") as f:
        del f["pixels"]
        f["images"] = np.zeros((5, 72, 72, 3), np.uint8)
    with pytest.raises(ShardError, match=r"train-00001\.h5: dataset 'pixels' is missing; run `make prepare-data`"):
        make_loader(prepared)


def test_offsets_that_disagree_with_the_shapes_are_refused(make_loader, prepared):
    with h5py.File(prepared / "aircraft" / "train-00000.h5", "a") as f:
        f["shapes"][2] = f["shapes"][2][::-1] + [0, 1]
    with pytest.raises(ShardError, match=r"train-00000\.h5: 1 images whose offsets span differs from height \* "
                                         r"width \(first: row 2, span \d+, shape \d+x\d+\)"):
        make_loader(prepared)


def test_images_smaller_than_the_crop_are_refused(make_loader, prepared):
    with h5py.File(prepared / "aircraft" / "train-00001.h5", "a") as f:
        height, width = f["shapes"][3]
        f["shapes"][3] = [height * width // 36, 36]  # one side is 72: the same pixel count
    with pytest.raises(ShardError, match=r"aircraft/train: aircraft \(spottune\): image 10 is \d+x36 \(HxW\), "
                                         r"smaller than the 64x64 crop"):
        make_loader(prepared)
