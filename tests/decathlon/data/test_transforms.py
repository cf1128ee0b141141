"""Batched augmentation of ragged batches of whole images: shapes, exact crops against
torchvision, crops reaching the whole image, normalisation, flips, reproducibility, errors."""
from decimal import ROUND_HALF_UP, Decimal

import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision import transforms

from decathlon.data import CROP_ROUNDINGS, DOMAIN_NAMES, get_domain, make_batch_transform, output_hw
from decathlon.data.transforms import PROTOCOLS, Crops, Ragged, centre_offsets, crop_ragged, pack

SPOTTUNE_CROPPED = {"aircraft", "cifar100", "dtd", "ucf101", "vgg-flowers", "imagenet12"}
UNAUGMENTED = {"gtsrb", "omniglot", "svhn"}
# Stored sizes (HxW) like the real ones: shorter side 72, longer side as released.
SIZES = {"daimlerpedcls": [(144, 72)], "cifar100": [(72, 72)], "omniglot": [(72, 72)], "svhn": [(72, 72)],
         "ucf101": [(72, 72)], "gtsrb": [(72, 72), (184, 72), (72, 103)],
         "imagenet12": [(72, 96), (72, 422), (108, 72), (72, 73)]}
VARIED = [(72, 121), (72, 95), (72, 123), (153, 72), (72, 72), (73, 72)]  # odd margins test the rounding


def sizes_of(domain):
    return SIZES.get(domain, VARIED)


def random_images(domain, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = sizes_of(domain)
    return [torch.randint(0, 256, (*sizes[i % len(sizes)], 3), dtype=torch.uint8, generator=g) for i in range(n)]


def position_image(height, width, index):
    """Pixels say where they are: channel 0 = row, 1 = column, 2 = image index (all mod 256)."""
    rows = torch.arange(height)[:, None].expand(height, width)
    cols = torch.arange(width)[None, :].expand(height, width)
    return torch.stack([rows, cols, torch.full_like(rows, index)], dim=-1).to(torch.uint8)


def expected_hw(domain, protocol, train):
    """The input sizes of docs/reference.md, section 3, written out independently of the code."""
    if protocol == "spottune":
        if domain == "daimlerpedcls":
            return (144, 72)
        return (64, 64) if train and domain in SPOTTUNE_CROPPED else (72, 72)
    return (72, 72) if domain in UNAUGMENTED else (64, 64)


def unnormalise(batch, domain):
    """Normalised float NCHW back to the uint8 NHWC pixel values it came from."""
    info = get_domain(domain)
    mean, std = torch.tensor(info.mean)[:, None, None], torch.tensor(info.std)[:, None, None]
    return ((batch * std + mean) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("domain", DOMAIN_NAMES)
@pytest.mark.parametrize("train", [True, False])
def test_output_shape_matches_protocol(domain, protocol, train):
    hw = expected_hw(domain, protocol, train)
    assert output_hw(domain, protocol, train) == hw
    out = make_batch_transform(domain, protocol, train)(pack(random_images(domain)), generator())
    assert out.shape == (6, 3, *hw)
    assert out.dtype == torch.float32 and out.is_contiguous()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_test_time_views_equal_torchvision_centre_crop_of_the_whole_image(domain, protocol):
    """Both public codes test on Resize(72) (the stored image) + CenterCrop + Normalize."""
    images = random_images(domain)
    info = get_domain(domain)
    size = list(expected_hw(domain, protocol, train=False))
    normalize = transforms.Normalize(info.mean, info.std)
    reference = torch.stack([normalize(TF.center_crop(image.permute(2, 0, 1), size).float() / 255)
                             for image in images])
    out = make_batch_transform(domain, protocol, train=False)(pack(images))
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)


def crop_origins(out, crop=64):
    """(tops, lefts, flipped) of the output images of a position batch, checking each is a crop."""
    rows, cols = out[..., 0].long(), out[..., 1].long()
    tops, flipped = rows[:, 0, 0], cols[:, 0, 0] > cols[:, 0, -1]
    lefts = torch.minimum(cols[:, 0, 0], cols[:, 0, -1])
    steps = torch.arange(crop)
    assert torch.equal(rows, (tops[:, None] + steps)[:, :, None].expand(-1, crop, crop))
    along = torch.where(flipped[:, None], steps.flip(0), steps)
    assert torch.equal(cols, (lefts[:, None] + along)[:, None, :].expand(-1, crop, crop))
    return tops, lefts, flipped


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_training_crops_cover_the_whole_image_not_only_its_central_square(protocol):
    """A 72x200 aircraft image: its central square holds columns 64..135; random crops
    reach every one of the 137 x 9 valid positions, the margins included."""
    n = 2048
    distinct = [position_image(72, 200, i) for i in range(256)]
    batch = pack([distinct[i % 256] for i in range(n)])
    out = unnormalise(make_batch_transform("aircraft", protocol, train=True)(batch, generator()), "aircraft")
    assert torch.equal(out[:, 0, 0, 2], (torch.arange(n) % 256).to(torch.uint8))  # image i stays at i
    tops, lefts, _ = crop_origins(out)
    assert set(lefts.tolist()) == set(range(137)) and set(tops.tolist()) == set(range(9))
    columns = out[..., 1].long()
    assert (columns < 64).any() and (columns >= 136).any()  # outside the central 72


def test_random_crops_of_a_ragged_batch_stay_inside_each_image():
    sizes = [(72, 90), (150, 72), (72, 72), (72, 250)]
    images = [position_image(h, w, i) for i, (h, w) in enumerate(sizes * 50)]
    out = unnormalise(make_batch_transform("vgg-flowers", "adapters", train=True)(pack(images), generator(1)),
                      "vgg-flowers")
    tops, lefts, _ = crop_origins(out)
    shapes = pack(images).shapes
    assert (tops >= 0).all() and (lefts >= 0).all()
    assert (tops <= shapes[:, 0] - 64).all() and (lefts <= shapes[:, 1] - 64).all()


@pytest.mark.parametrize("domain,protocol,size", [("daimlerpedcls", "spottune", (144, 72)),
                                                  ("gtsrb", "spottune", (72, 72)), ("gtsrb", "adapters", (72, 72))])
def test_fixed_views_are_the_same_at_train_and_test(domain, protocol, size):
    images = pack(random_images(domain))
    train = make_batch_transform(domain, protocol, train=True)(images, generator())
    assert torch.equal(train, make_batch_transform(domain, protocol, train=False)(images))
    assert train.shape[2:] == size


def _python2_round(value):
    """Python 2's round: halves away from zero (the decimal module's ROUND_HALF_UP for x >= 0)."""
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize("rounding", CROP_ROUNDINGS)
def test_centre_offsets_round_halves_as_named(rounding):
    """torchvision's int(round((size - crop) / 2.0)) under Python 3 or Python 2, on stored
    sizes of the real data (121 wide aircraft, 95, 123, 153 long sides, 73-px leftovers)."""
    sizes = [72, 73, 95, 121, 123, 144, 153, 184, 422]
    for crop in (64, 72):
        offsets = centre_offsets(torch.tensor(sizes), crop, rounding).tolist()
        margins = [(size - crop) / 2.0 for size in sizes]
        assert offsets == [round(m) if rounding == "half_even" else _python2_round(m) for m in margins]
    assert centre_offsets(torch.tensor([121]), 64, "half_away").item() == 29   # 28.5: Python 2
    assert centre_offsets(torch.tensor([121]), 64, "half_even").item() == 28   # 28.5: Python 3


def test_centre_crop_with_python_2_rounding_moves_the_odd_margin_pixel():
    transform = make_batch_transform("dtd", "adapters", train=False, crop_rounding="half_away")
    out = unnormalise(transform(pack([position_image(72, 121, 0), position_image(125, 72, 1)])), "dtd")
    assert torch.equal(out[0, :, :, 1], torch.arange(29, 93)[None, :].expand(64, 64))   # 28.5 -> 29
    assert torch.equal(out[1, :, :, 0], torch.arange(31, 95)[:, None].expand(64, 64))   # 30.5 -> 31
    with pytest.raises(ValueError, match="unknown crop rounding 'half_up'; valid: half_even, half_away"):
        make_batch_transform("dtd", "adapters", train=False, crop_rounding="half_up")


def test_centre_crop_of_a_wide_image_takes_the_middle():
    out = unnormalise(make_batch_transform("dtd", "adapters", train=False)(pack([position_image(72, 121, 0)])), "dtd")
    assert torch.equal(out[0, :, :, 0], torch.arange(4, 68)[:, None].expand(64, 64))
    # torchvision: int(round((121 - 64) / 2.0)) = round(28.5) = 28 (half to even)
    assert torch.equal(out[0, :, :, 1], torch.arange(28, 92)[None, :].expand(64, 64))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_only_adapters_training_flips_and_only_the_cropped_domains(domain, protocol):
    height, width = sizes_of(domain)[0]
    images = pack([position_image(height, width, i) for i in range(32)])
    for train in (True, False):
        out = make_batch_transform(domain, protocol, train)(images, generator())
        cols = unnormalise(out, domain)[:, 0, :, 1].float()
        flipped = (cols[:, 0] > cols[:, -1]).tolist()
        should_flip = protocol == "adapters" and train and domain not in UNAUGMENTED
        assert any(flipped) == should_flip and not all(flipped)


def test_same_generator_seed_gives_the_same_batch():
    transform = make_batch_transform("vgg-flowers", "adapters", train=True)
    images = pack(random_images("vgg-flowers", n=16))
    assert torch.equal(transform(images, generator(3)), transform(images, generator(3)))
    assert not torch.equal(transform(images, generator(3)), transform(images, generator(4)))


def test_crops_are_drawn_from_the_shapes_alone():
    """The same generator gives the same crops whatever buffer the images lie in."""
    transform = make_batch_transform("aircraft", "spottune", train=True)
    images = random_images("aircraft", n=8)
    packed = pack(images)
    spaced = Ragged(torch.cat([torch.zeros(50, 3, dtype=torch.uint8), packed.pixels]), packed.starts + 50,
                    packed.shapes)
    assert torch.equal(transform(packed, generator(5)), transform(spaced, generator(5)))


def test_channels_last_output_has_the_same_values():
    images = pack(random_images("ucf101"))
    plain = make_batch_transform("ucf101", "adapters", train=True)(images, generator())
    packed = make_batch_transform("ucf101", "adapters", train=True, channels_last=True)(images, generator())
    assert packed.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain, packed)


def test_clear_errors():
    transform = make_batch_transform("aircraft", "adapters", train=True)
    good = pack(random_images("aircraft"))
    with pytest.raises(ValueError, match="torch.Generator"):
        transform(good)
    with pytest.raises(ValueError, match=r"uint8 \(P, 3\) buffer, got torch.float32"):
        transform(good._replace(pixels=good.pixels.float()), generator())
    with pytest.raises(ValueError, match=r"uint8 \(P, 3\) buffer, got torch.uint8 of shape \(\d+, 1\)"):
        transform(good._replace(pixels=good.pixels[:, :1]), generator())
    with pytest.raises(ValueError, match=r"starts int64 \(n,\) and shapes int64 \(n, 2\), got torch.int64 \(6,\) "
                                         r"and torch.int64 \(5, 2\)"):
        transform(good._replace(shapes=good.shapes[:5]), generator())
    with pytest.raises(ValueError, match=r"aircraft \(adapters\): image 1 is 60x90 \(HxW\), smaller than the "
                                         r"64x64 crop \(1 such images\)"):
        transform(pack([position_image(72, 90, 0), position_image(60, 90, 1)]), generator())
    with pytest.raises(ValueError, match=r"image 5 spans pixels \d+..\d+, outside the buffer of \d+ pixels"):
        transform(good._replace(pixels=good.pixels[:-1]), generator())
    with pytest.raises(ValueError, match="unknown augmentation protocol"):
        make_batch_transform("aircraft", "timm", train=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_same_images_as_cpu_for_the_same_crops():
    transform = make_batch_transform("daimlerpedcls", "adapters", train=True, channels_last=True)
    images = pack(random_images("imagenet12", n=64))
    crops = transform.draw(images.shapes, generator())
    on_cpu = transform.apply(images, crops)
    on_gpu = transform.apply(Ragged(*(t.cuda() for t in images)), Crops(*(t.cuda() for t in crops)))
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=1e-5)
    uint8 = crop_ragged(Ragged(*(t.cuda() for t in images)), Crops(*(t.cuda() for t in crops)), (64, 64))
    assert torch.equal(uint8.cpu(), crop_ragged(images, crops, (64, 64)))
    with pytest.raises(ValueError, match="the generator is on cpu but the batch on cuda"):
        transform(Ragged(*(t.cuda() for t in images)), generator())
