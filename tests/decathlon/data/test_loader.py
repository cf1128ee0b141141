"""ShardLoader over tiny shards written here with h5py, following decathlon.data.manifest's schema."""
import threading

import h5py
import numpy as np
import pytest
import torch

from decathlon.data import loader as loader_module
from decathlon.data.domains import get_domain
from decathlon.data.loader import ShardError, ShardLoader
from decathlon.data.manifest import ManifestError, write_json_atomic

DOMAIN = "aircraft"
SHARD_SIZES = (7, 5, 11)  # 23 images, shards of unequal size


def label_of(image_id):
    return (image_id * 7) % get_domain(DOMAIN).num_classes


def write_prepared(root, domain=DOMAIN, shard_sizes=SHARD_SIZES, split="train"):
    """A prepared folder with one split. Pixels say what they are: channel 0 = row,
    channel 1 = column, channel 2 = image_id % 251 (which image it is)."""
    info = get_domain(domain)
    first_id = info.index * 10**7 + 1
    shards = []
    for number, count in enumerate(shard_sizes):
        ids = np.arange(first_id, first_id + count, dtype=np.int64)
        first_id += count
        images = np.empty((count, *info.stored_hw, 3), np.uint8)
        images[..., 0] = np.arange(info.stored_hw[0])[:, None]
        images[..., 1] = np.arange(info.stored_hw[1])[None, :]
        images[..., 2] = (ids % 251)[:, None, None]
        name = f"{domain}/{split}-{number:05d}.h5"
        (root / domain).mkdir(parents=True, exist_ok=True)
        with h5py.File(root / name, "w") as f:
            f["images"] = images
            f["labels"] = label_of(ids)
            f["image_ids"] = ids
        shards.append({"file": name, "num_images": count, "sha256": "not checked here"})
    split_entry = {"num_images": sum(shard_sizes), "labels_known": True, "annotation_file": "fixture",
                   "annotation_sha256": "", "shards": shards}
    domain_entry = {"index": info.index, "num_classes": info.num_classes, "class_names": [],
                    "image_hw": list(info.stored_hw), "storage": "fixture", "mean": list(info.mean),
                    "std": list(info.std), "splits": {split: split_entry}}
    write_json_atomic(root / "manifest.json", {"format_version": 1, "synthetic": True, "source": "test fixture",
                                               "domains": {domain: domain_entry}})
    return root


@pytest.fixture
def prepared(tmp_path):
    return write_prepared(tmp_path)


@pytest.fixture(params=["streamed", "cached"])
def cache_mode(request, monkeypatch):
    """Run a test once reading chunks from the files and once from the in-memory copy."""
    if request.param == "streamed":
        monkeypatch.setattr(loader_module, "CACHE_LIMIT_BYTES", 0)
    return request.param


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


@pytest.mark.parametrize("prefetch", [0, 2])
def test_every_image_once_per_epoch_with_matching_labels_and_pixels(prepared, cache_mode, prefetch):
    loader = make_loader(prepared, protocol="adapters", train=False, prefetch=prefetch)
    seen = []
    for images, labels, ids in loader:
        assert images.shape[1:] == (3, 64, 64) and images.dtype == torch.float32
        assert torch.equal(labels, torch.from_numpy(label_of(ids.numpy())))
        pixels = unnormalise(images)
        assert torch.equal(pixels[:, 2], (ids % 251).float()[:, None, None].expand(-1, 64, 64))
        assert torch.equal(pixels[:, 0], torch.arange(4, 68.)[:, None].expand(len(ids), 64, 64))  # centre crop
        seen.append(ids.numpy())
    seen = np.concatenate(seen)
    assert len(seen) == 23 and sorted(seen) == list(all_ids())
    assert [len(ids) for _, _, ids in loader] == [4, 4, 4, 4, 4, 3] and len(loader) == 6


def test_unshuffled_order_is_the_stored_order(prepared):
    assert list(epoch_ids(make_loader(prepared, shuffle=False))) == list(all_ids())


def test_order_changes_with_the_epoch_and_repeats_for_the_same_seed_and_epoch(prepared, cache_mode):
    first = make_loader(prepared, seed=5)
    orders = [epoch_ids(first, epoch) for epoch in range(3)]
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    again = make_loader(prepared, seed=5)
    assert np.array_equal(epoch_ids(again, 1), orders[1])
    assert not np.array_equal(epoch_ids(make_loader(prepared, seed=6), 1), orders[1])


def test_augmentation_is_reproducible_for_the_same_seed_and_epoch(prepared):
    def first_batch(epoch):
        loader = make_loader(prepared, protocol="adapters", shuffle=False)
        loader.set_epoch(epoch)
        return next(iter(loader))[0]
    assert torch.equal(first_batch(2), first_batch(2))
    assert not torch.equal(first_batch(2), first_batch(3))


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ranks_see_equal_disjoint_parts_with_drop_last(prepared, world_size):
    parts = [epoch_ids(make_loader(prepared, rank=r, world_size=world_size, drop_last=True, batch_size=1), 4)
             for r in range(world_size)]
    assert len({len(part) for part in parts}) == 1 and len(parts[0]) == 23 // world_size
    together = np.concatenate(parts)
    assert len(set(together)) == len(together) and set(together) <= set(all_ids())


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_cover_the_epoch_without_drop_last(prepared, world_size):
    loaders = [make_loader(prepared, rank=r, world_size=world_size) for r in range(world_size)]
    parts = [epoch_ids(loader, 4) for loader in loaders]
    assert len({len(part) for part in parts}) == 1 and len({len(loader) for loader in loaders}) == 1
    together = np.concatenate(parts)
    assert set(together) == set(all_ids())
    assert len(together) - len(set(together)) == -23 % world_size  # padding repeats at most world_size - 1


def test_ranks_of_a_divisible_split_partition_it_exactly(tmp_path):
    root = write_prepared(tmp_path, shard_sizes=(6, 6))
    parts = [epoch_ids(make_loader(root, rank=r, world_size=3), 1) for r in range(3)]
    together = np.concatenate(parts)
    assert len(together) == 12 and len(set(together)) == 12


def test_drop_last_drops_the_partial_batch(prepared):
    loader = make_loader(prepared, drop_last=True, batch_size=5)
    assert len(loader) == 4 and [len(ids) for _, _, ids in loader] == [5, 5, 5, 5]


def test_max_images_keeps_the_first_images_of_the_split(prepared, cache_mode):
    loader = make_loader(prepared, max_images=9)
    assert loader.num_images == 9 and len(loader) == 3
    assert sorted(epoch_ids(loader)) == list(all_ids()[:9])


def test_tall_daimler_shards_come_out_at_the_protocol_size(tmp_path):
    root = write_prepared(tmp_path, domain="daimlerpedcls", shard_sizes=(5,))
    for protocol, size in (("spottune", (144, 72)), ("adapters", (64, 64))):
        loader = ShardLoader(root, "daimlerpedcls", "train", 4, train=True, protocol=protocol, shuffle=True,
                             seed=0, drop_last=False, device="cpu")
        assert [tuple(images.shape) for images, _, _ in loader] == [(4, 3, *size), (1, 3, *size)]


def test_leaving_an_epoch_early_stops_the_reader(prepared):
    loader = make_loader(prepared, batch_size=1, prefetch=1)
    for _ in zip(range(2), loader):
        pass
    assert not any(thread.name == "shard-prefetch" for thread in threading.enumerate())
    assert len(epoch_ids(loader)) == 23


def test_read_error_in_the_prefetch_thread_reaches_the_caller(prepared, monkeypatch):
    monkeypatch.setattr(loader_module, "CACHE_LIMIT_BYTES", 0)
    loader = make_loader(prepared)
    (prepared / DOMAIN / "train-00001.h5").unlink()
    with pytest.raises(OSError):
        list(loader)


def test_missing_manifest_says_to_prepare_data(tmp_path):
    with pytest.raises(ManifestError, match=r"manifest\.json.*make prepare-data"):
        make_loader(tmp_path)


def test_missing_shard_is_named(prepared):
    (prepared / DOMAIN / "train-00002.h5").unlink()
    with pytest.raises(ShardError, match=r"train-00002\.h5.*missing.*make prepare-data"):
        make_loader(prepared)


def test_unprepared_split_is_named(prepared):
    with pytest.raises(ManifestError, match=r"'val'.*not prepared.*make prepare-data"):
        ShardLoader(prepared, DOMAIN, "val", 4, train=False, protocol="spottune", shuffle=False, seed=0,
                    drop_last=False, device="cpu")


@pytest.mark.parametrize("dataset,bad,message", [
    ("images", np.zeros((7, 72, 72, 3), np.float32), r"'images' is float32"),
    ("images", np.zeros((7, 64, 64, 3), np.uint8), r"'images' is uint8 \(7, 64, 64, 3\)"),
    ("labels", np.zeros(7, np.int32), r"'labels' is int32"),
    ("image_ids", np.zeros(6, np.int64), r"'image_ids' is int64 \(6,\)"),
])
def test_shard_not_as_the_manifest_says(prepared, dataset, bad, message):
    with h5py.File(prepared / DOMAIN / "train-00000.h5", "a") as f:
        del f[dataset]
        f[dataset] = bad
    with pytest.raises(ShardError, match=r"train-00000\.h5.*" + message):
        make_loader(prepared)
