"""Tiny prepared folders written here with h5py, following decathlon.data.manifest's
schema, for the loader tests. (pytest runs with --import-mode=importlib, so test modules
cannot import this file: helpers are handed out as fixtures, at the end.)"""
import h5py
import numpy as np
import pytest
import torch

from decathlon.data import ShardLoader, get_domain
from decathlon.files import write_json_atomic

DOMAIN = "aircraft"
SHARD_SIZES = (7, 5, 11)  # 23 images, shards of unequal size


def label_of(image_id):
    return (image_id * 7) % get_domain(DOMAIN).num_classes


def shape_of(domain, image_id):
    """Whole-image sizes (HxW) as stored: shorter side 72, the longer one varies by image."""
    fixed = get_domain(domain).image_hw
    if fixed:
        return fixed
    extra = int(image_id * 37 % 61)
    return (72 + extra, 72) if image_id % 5 == 0 else (72, 72 + extra)


def write_prepared(root, domain=DOMAIN, shard_sizes=SHARD_SIZES, split="train"):
    """A prepared folder with one split. Pixels say what they are: channel 0 = row,
    channel 1 = column, channel 2 = image_id % 251 (which image it is)."""
    info = get_domain(domain)
    first_id = info.index * 10**7 + 1
    shards = []
    for number, count in enumerate(shard_sizes):
        ids = np.arange(first_id, first_id + count, dtype=np.int64)
        first_id += count
        shapes = np.array([shape_of(domain, i) for i in ids], np.int64)
        images = []
        for image_id, (height, width) in zip(ids, shapes):
            image = np.empty((height, width, 3), np.uint8)
            image[..., 0], image[..., 1] = np.arange(height)[:, None], np.arange(width)[None, :]
            image[..., 2] = image_id % 251
            images.append(image.reshape(-1, 3))
        name = f"{domain}/{split}-{number:05d}.h5"
        (root / domain).mkdir(parents=True, exist_ok=True)
        with h5py.File(root / name, "w") as f:
            f["pixels"] = np.concatenate(images)
            f["offsets"] = np.concatenate([[0], np.cumsum(shapes.prod(axis=1))]).astype(np.int64)
            f["shapes"] = shapes
            f["labels"] = label_of(ids)
            f["image_ids"] = ids
        shards.append({"file": name, "num_images": count, "num_pixels": int(shapes.prod(axis=1).sum()),
                       "sha256": "not checked here"})
    split_entry = {"num_images": sum(shard_sizes), "labels_known": True, "annotation_file": "fixture",
                   "annotation_sha256": "", "shards": shards}
    domain_entry = {"index": info.index, "num_classes": info.num_classes, "class_names": [], "short_side": 72,
                    "storage": "fixture", "mean": list(info.mean), "std": list(info.std),
                    "splits": {split: split_entry}}
    write_json_atomic(root / "manifest.json", {"format_version": 2, "synthetic": True, "source": "test fixture",
                                               "domains": {domain: domain_entry}})
    return root


def unnormalise(images):
    info = get_domain(DOMAIN)
    return ((images * torch.tensor(info.std)[:, None, None] + torch.tensor(info.mean)[:, None, None]) * 255).round()


def make_loader(root, **overrides):
    options = dict(batch_size=4, train=True, protocol="spottune", shuffle=True, seed=0, drop_last=False,
                   device="cpu", chunk_size=3, shuffle_window_chunks=2)
    options.update(overrides)
    return ShardLoader(root, DOMAIN, "train", **options)


def epoch_ids(loader, epoch=0):
    loader.set_epoch(epoch)
    return np.concatenate([ids.numpy() for _, _, ids in loader])


def all_ids():
    return np.arange(sum(SHARD_SIZES)) + get_domain(DOMAIN).index * 10**7 + 1


@pytest.fixture
def prepared(tmp_path):
    """A prepared folder holding aircraft/train in three shards."""
    return write_prepared(tmp_path)


@pytest.fixture(name="label_of")
def _label_of_fixture():
    """label_of(image_ids) -> the labels the fixture gives them."""
    return label_of


@pytest.fixture(name="shape_of")
def _shape_of_fixture():
    """shape_of(domain, image_id) -> (height, width) as stored."""
    return shape_of


@pytest.fixture(name="write_prepared")
def _write_prepared_fixture():
    """write_prepared(root, domain, shard_sizes, split) -> root, a prepared folder."""
    return write_prepared


@pytest.fixture(name="unnormalise")
def _unnormalise_fixture():
    """unnormalise(aircraft images) -> pixel values."""
    return unnormalise


@pytest.fixture(name="make_loader")
def _make_loader_fixture():
    """make_loader(root, **options) -> a ShardLoader of aircraft/train with small test defaults."""
    return make_loader


@pytest.fixture(name="epoch_ids")
def _epoch_ids_fixture():
    """epoch_ids(loader, epoch) -> the image_ids of one epoch, in order."""
    return epoch_ids


@pytest.fixture(name="all_ids")
def _all_ids_fixture():
    """all_ids() -> the image_ids of the prepared split, in stored order."""
    return all_ids
