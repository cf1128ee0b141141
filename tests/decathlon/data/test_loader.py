"""ShardLoader over tiny shards (tests/decathlon/data/conftest.py): every image once, the
epoch order, DDP slices, resident and streamed modes giving the same batches, crops of the
whole image, and on CUDA the same images as on the CPU without host syncs."""
import threading
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import numpy as np
import pytest
import torch

from decathlon.data import ShardLoader, loader as loader_module


@pytest.fixture(params=[False, True], ids=["streamed", "resident"])
def resident(request):
    """Run a test once reading chunks from the files and once from the split held whole."""
    return request.param


@pytest.mark.parametrize("prefetch", [0, 2])
def test_every_image_once_per_epoch_with_matching_labels_and_pixels(label_of, shape_of, unnormalise, make_loader,
                                                                    all_ids, prepared, resident, prefetch):
    loader = make_loader(prepared, protocol="adapters", train=False, prefetch=prefetch, resident=resident)
    assert loader.resident == resident
    seen = []
    for images, labels, ids in loader:
        assert images.shape[1:] == (3, 64, 64) and images.dtype == torch.float32
        assert torch.equal(labels, torch.from_numpy(label_of(ids.numpy())))
        pixels = unnormalise(images)
        assert torch.equal(pixels[:, 2], (ids % 251).float()[:, None, None].expand(-1, 64, 64))
        for image, image_id in zip(pixels, ids.tolist()):  # the centre 64 of the whole image
            height, width = shape_of("aircraft", image_id)
            top, left = round((height - 64) / 2), round((width - 64) / 2)
            assert torch.equal(image[0], torch.arange(top, top + 64.)[:, None].expand(64, 64))
            assert torch.equal(image[1], torch.arange(left, left + 64.)[None, :].expand(64, 64))
        seen.append(ids.numpy())
    seen = np.concatenate(seen)
    assert len(seen) == 23 and sorted(seen) == list(all_ids())
    assert [len(ids) for _, _, ids in loader] == [4, 4, 4, 4, 4, 3] and len(loader) == 6


@pytest.mark.parametrize("protocol", ["spottune", "adapters"])
@pytest.mark.parametrize("world_size,drop_last,batch_size", [(1, False, 4), (1, True, 5), (3, False, 2), (2, True, 3)])
def test_resident_and_streamed_batches_are_identical(make_loader, prepared, protocol, world_size, drop_last,
                                                     batch_size):
    """Same (seed, epoch, rank, world_size): the same images, labels, ids and random crops."""
    for rank in range(world_size):
        options = dict(protocol=protocol, rank=rank, world_size=world_size, drop_last=drop_last,
                       batch_size=batch_size, seed=3)
        streamed = make_loader(prepared, resident=False, **options)
        held = make_loader(prepared, resident=True, **options)
        for epoch in (0, 5):
            streamed.set_epoch(epoch)
            held.set_epoch(epoch)
            pairs = list(zip(streamed, held, strict=True))
            assert len(pairs) == len(streamed) == len(held)
            for a, b in pairs:
                assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_training_crops_reach_beyond_the_central_square(shape_of, unnormalise, make_loader, prepared, resident):
    loader = make_loader(prepared, resident=resident, batch_size=23)
    outside = False
    for epoch in range(4):
        loader.set_epoch(epoch)
        for images, _, ids in loader:
            for image, image_id in zip(unnormalise(images), ids.tolist()):
                height, width = shape_of("aircraft", image_id)
                row0, col0 = (height - 72) // 2, (width - 72) // 2
                outside |= bool((image[0] < row0).any() or (image[0] >= row0 + 72).any()
                                or (image[1] < col0).any() or (image[1] >= col0 + 72).any())
    assert outside


def test_choice_of_residency_follows_the_budget(make_loader, prepared, monkeypatch):
    assert make_loader(prepared).resident  # 23 small images fit 512 MiB
    assert not make_loader(prepared, resident=False).resident
    monkeypatch.setattr(loader_module, "RESIDENT_CPU_BYTES", 1000)
    assert not make_loader(prepared).resident and make_loader(prepared, resident=True).resident


def test_unshuffled_order_is_the_stored_order(make_loader, epoch_ids, all_ids, prepared, resident):
    assert list(epoch_ids(make_loader(prepared, shuffle=False, resident=resident))) == list(all_ids())


def test_order_changes_with_the_epoch_and_repeats_for_the_same_seed_and_epoch(make_loader, epoch_ids, prepared,
                                                                              resident):
    first = make_loader(prepared, seed=5, resident=resident)
    orders = [epoch_ids(first, epoch) for epoch in range(3)]
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    again = make_loader(prepared, seed=5, resident=resident)
    assert np.array_equal(epoch_ids(again, 1), orders[1])
    assert not np.array_equal(epoch_ids(make_loader(prepared, seed=6, resident=resident), 1), orders[1])


def test_augmentation_is_reproducible_for_the_same_seed_and_epoch(make_loader, prepared):
    def first_batch(epoch):
        loader = make_loader(prepared, protocol="adapters", shuffle=False)
        loader.set_epoch(epoch)
        return next(iter(loader))[0]
    assert torch.equal(first_batch(2), first_batch(2))
    assert not torch.equal(first_batch(2), first_batch(3))


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ranks_see_equal_disjoint_parts_with_drop_last(make_loader, epoch_ids, all_ids, prepared, world_size):
    parts = [epoch_ids(make_loader(prepared, rank=r, world_size=world_size, drop_last=True, batch_size=1), 4)
             for r in range(world_size)]
    assert len({len(part) for part in parts}) == 1 and len(parts[0]) == 23 // world_size
    together = np.concatenate(parts)
    assert len(set(together)) == len(together) and set(together) <= set(all_ids())


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_cover_the_epoch_without_drop_last(make_loader, epoch_ids, all_ids, prepared, world_size):
    loaders = [make_loader(prepared, rank=r, world_size=world_size) for r in range(world_size)]
    parts = [epoch_ids(loader, 4) for loader in loaders]
    assert len({len(part) for part in parts}) == 1 and len({len(loader) for loader in loaders}) == 1
    together = np.concatenate(parts)
    assert set(together) == set(all_ids())
    assert len(together) - len(set(together)) == -23 % world_size  # padding repeats at most world_size - 1
    real = [part[:loader.real_images_per_rank] for part, loader in zip(parts, loaders)]
    assert sorted(np.concatenate(real)) == sorted(all_ids())   # what precedes the padding: each image once


def test_ranks_of_a_divisible_split_partition_it_exactly(make_loader, epoch_ids, write_prepared, tmp_path):
    root = write_prepared(tmp_path, shard_sizes=(6, 6))
    parts = [epoch_ids(make_loader(root, rank=r, world_size=3), 1) for r in range(3)]
    together = np.concatenate(parts)
    assert len(together) == 12 and len(set(together)) == 12


def test_drop_last_drops_the_partial_batch(make_loader, prepared, resident):
    loader = make_loader(prepared, drop_last=True, batch_size=5, resident=resident)
    assert len(loader) == 4 and [len(ids) for _, _, ids in loader] == [5, 5, 5, 5]


def test_training_without_drop_last_keeps_the_shorter_last_batch(make_loader, all_ids, prepared, resident):
    loader = make_loader(prepared, train=True, drop_last=False, batch_size=5, resident=resident)
    sizes, seen = [], []
    for images, _, ids in loader:
        sizes.append(len(images))
        seen += ids.tolist()
    assert len(loader) == 5 and sizes == [5, 5, 5, 5, 3] and sorted(seen) == list(all_ids())   # ceil(23 / 5)


@pytest.mark.parametrize("rounding", ["half_even", "half_away"])
def test_centre_crops_round_odd_margins_as_told(shape_of, unnormalise, make_loader, prepared, resident, rounding):
    """Python 3's round (half to even) or Python 2's (half away from zero) of (size - 64) / 2."""
    def offset(size):
        half = Decimal(size - 64) / 2
        return int(half.quantize(Decimal(1), rounding=ROUND_HALF_EVEN if rounding == "half_even" else ROUND_HALF_UP))

    loader = make_loader(prepared, protocol="adapters", train=False, resident=resident, crop_rounding=rounding)
    odd_margins = 0
    for images, _, ids in loader:
        for image, image_id in zip(unnormalise(images), ids.tolist()):
            height, width = shape_of("aircraft", image_id)
            assert image[0, 0, 0] == offset(height) and image[1, 0, 0] == offset(width)
            odd_margins += (height + width) % 2
    assert odd_margins >= 5


def test_max_images_keeps_the_first_images_of_the_split(make_loader, epoch_ids, all_ids, prepared, resident):
    loader = make_loader(prepared, max_images=9, resident=resident)
    assert loader.num_images == 9 and len(loader) == 3
    assert sorted(epoch_ids(loader)) == list(all_ids()[:9])


def test_tall_daimler_shards_come_out_at_the_protocol_size(write_prepared, tmp_path):
    root = write_prepared(tmp_path, domain="daimlerpedcls", shard_sizes=(5,))
    for protocol, size in (("spottune", (144, 72)), ("adapters", (64, 64))):
        loader = ShardLoader(root, "daimlerpedcls", "train", 4, train=True, protocol=protocol, shuffle=True,
                             seed=0, drop_last=False, device="cpu")
        assert [tuple(images.shape) for images, _, _ in loader] == [(4, 3, *size), (1, 3, *size)]


def test_leaving_an_epoch_early_stops_the_reader(make_loader, epoch_ids, prepared):
    loader = make_loader(prepared, batch_size=1, prefetch=1, resident=False)
    for _ in zip(range(2), loader):
        pass
    assert not any(thread.name == "shard-prefetch" for thread in threading.enumerate())
    assert len(epoch_ids(loader)) == 23


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("resident_on_cuda", [True, False])
def test_cuda_gives_the_same_images_as_the_cpu(make_loader, prepared, resident_on_cuda):
    """Deterministic (test-time) crops: the same batches on CUDA as on the CPU. Random
    crops: CUDA resident and streamed draw the same crops from the CUDA generator."""
    options = dict(protocol="adapters", train=False, batch_size=5)
    on_cpu = list(make_loader(prepared, **options))
    on_cuda = list(make_loader(prepared, device="cuda", resident=resident_on_cuda, **options))
    for (x, y, ids), (cx, cy, cids) in zip(on_cpu, on_cuda, strict=True):
        assert cx.is_cuda and cy.is_cuda and not cids.is_cuda
        torch.testing.assert_close(cx.cpu(), x, rtol=0, atol=1e-5)
        assert torch.equal(cy.cpu(), y) and torch.equal(cids, ids)
    train = dict(protocol="adapters", batch_size=5, device="cuda")
    pairs = zip(make_loader(prepared, resident=True, **train), make_loader(prepared, resident=False, **train))
    for a, b in pairs:
        assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_resident_epochs_never_wait_for_the_gpu(make_loader, prepared):
    loader = make_loader(prepared, device="cuda", resident=True, protocol="adapters", batch_size=5)
    list(loader)  # the first epoch loads the split
    loader.set_epoch(1)
    torch.cuda.set_sync_debug_mode("error")
    try:
        batches = [(images.sum(), labels) for images, labels, _ in loader]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(batches) == len(loader)
