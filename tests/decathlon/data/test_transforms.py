"""Batched augmentation: shapes, exact crops, normalisation, flips and reproducibility."""
import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision import transforms

from decathlon.data.domains import DOMAIN_NAMES, get_domain
from decathlon.data.transforms import PROTOCOLS, make_batch_transform, output_hw

SPOTTUNE_CROPPED = {"aircraft", "cifar100", "dtd", "ucf101", "vgg-flowers", "imagenet12"}
UNAUGMENTED = {"gtsrb", "omniglot", "svhn"}


def expected_hw(domain, protocol, train):
    """The input sizes of REFERENCE.md section 3, written out independently of the code."""
    if protocol == "spottune":
        if domain == "daimlerpedcls":
            return (144, 72)
        return (64, 64) if train and domain in SPOTTUNE_CROPPED else (72, 72)
    return (72, 72) if domain in UNAUGMENTED else (64, 64)


def random_batch(domain, n=6, seed=0):
    height, width = get_domain(domain).stored_hw
    return torch.randint(0, 256, (n, height, width, 3), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def position_batch(n=32, height=72, width=72):
    """Images whose pixels say where they are: channel 0 = row, 1 = column, 2 = image index."""
    rows = torch.arange(height)[:, None].expand(height, width)
    cols = torch.arange(width)[None, :].expand(height, width)
    images = [torch.stack([rows, cols, torch.full_like(rows, i)], dim=-1) for i in range(n)]
    return torch.stack(images).to(torch.uint8)


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
    out = make_batch_transform(domain, protocol, train)(random_batch(domain), generator())
    assert out.shape == (6, 3, *hw)
    assert out.dtype == torch.float32 and out.is_contiguous()


@pytest.mark.parametrize("domain,protocol", [("aircraft", "adapters"), ("gtsrb", "adapters"),
                                             ("cifar100", "spottune"), ("svhn", "spottune")])
def test_test_time_matches_torchvision_centre_crop_and_normalize(domain, protocol):
    images = random_batch(domain)
    info = get_domain(domain)
    normalize = transforms.Normalize(info.mean, info.std)
    size = expected_hw(domain, protocol, train=False)
    reference = torch.stack([normalize(TF.center_crop(img.permute(2, 0, 1), list(size)).float() / 255)
                             for img in images])
    out = make_batch_transform(domain, protocol, train=False)(images)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)


def test_adapters_daimler_is_resized_to_72_then_centre_cropped():
    images = random_batch("daimlerpedcls")
    resized = TF.resize(images.permute(0, 3, 1, 2).float(), [72, 72], antialias=True)
    info = get_domain("daimlerpedcls")
    reference = transforms.Normalize(info.mean, info.std)(TF.center_crop(resized, [64, 64]) / 255)
    out = make_batch_transform("daimlerpedcls", "adapters", train=False)(images)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-4)


def test_centre_crop_takes_exactly_the_middle_64():
    out = unnormalise(make_batch_transform("dtd", "adapters", train=False)(position_batch(2)), "dtd")
    assert torch.equal(out[..., 0], torch.arange(4, 68)[:, None].expand(2, 64, 64))
    assert torch.equal(out[..., 1], torch.arange(4, 68)[None, :].expand(2, 64, 64))


def crop_origins(out):
    """(top, left, flipped) of every output image of a position batch, checking it is a crop."""
    origins = []
    for image in out:
        rows, cols = image[..., 0].long(), image[..., 1].long()
        top, left = rows[0, 0].item(), min(cols[0, 0].item(), cols[0, -1].item())
        flipped = cols[0, 0].item() > cols[0, -1].item()
        expected_cols = torch.arange(left, left + 64)
        assert torch.equal(rows, torch.arange(top, top + 64)[:, None].expand(64, 64))
        assert torch.equal(cols, (expected_cols.flip(0) if flipped else expected_cols)[None, :].expand(64, 64))
        assert 0 <= top <= 8 and 0 <= left <= 8
        origins.append((top, left, flipped))
    return origins


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_random_crops_are_inside_the_image_and_differ_per_image(protocol):
    images = position_batch()
    out = unnormalise(make_batch_transform("aircraft", protocol, train=True)(images, generator()), "aircraft")
    assert torch.equal(out[:, 0, 0, 2], torch.arange(32, dtype=torch.uint8))  # image i stays at i
    origins = crop_origins(out)
    assert len({(top, left) for top, left, _ in origins}) > 10


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("domain", DOMAIN_NAMES)
def test_only_adapters_training_flips_and_only_the_cropped_domains(domain, protocol):
    images = position_batch()
    if domain == "daimlerpedcls":
        images = torch.cat([images, images], dim=1)
    for train in (True, False):
        out = make_batch_transform(domain, protocol, train)(images, generator())
        cols = unnormalise(out, domain)[:, 0, :, 1].float()
        flipped = (cols[:, 0] > cols[:, -1]).tolist()
        should_flip = protocol == "adapters" and train and domain not in UNAUGMENTED
        assert any(flipped) == should_flip and not all(flipped)


def test_same_generator_seed_gives_the_same_batch():
    transform = make_batch_transform("vgg-flowers", "adapters", train=True)
    images = random_batch("vgg-flowers", n=16)
    assert torch.equal(transform(images, generator(3)), transform(images, generator(3)))
    assert not torch.equal(transform(images, generator(3)), transform(images, generator(4)))


def test_channels_last_output_has_the_same_values():
    images = random_batch("ucf101")
    plain = make_batch_transform("ucf101", "adapters", train=True)(images, generator())
    packed = make_batch_transform("ucf101", "adapters", train=True, channels_last=True)(images, generator())
    assert packed.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain, packed)


def test_clear_errors():
    transform = make_batch_transform("aircraft", "adapters", train=True)
    with pytest.raises(ValueError, match="torch.Generator"):
        transform(random_batch("aircraft"))
    with pytest.raises(ValueError, match=r"\(N, 72, 72, 3\)"):
        transform(random_batch("daimlerpedcls"), generator())
    with pytest.raises(ValueError, match="float32"):
        transform(random_batch("aircraft").float(), generator())
    with pytest.raises(ValueError, match="unknown augmentation protocol"):
        make_batch_transform("aircraft", "timm", train=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_gives_the_same_result_as_cpu():
    transform = make_batch_transform("daimlerpedcls", "adapters", train=True)
    images = random_batch("daimlerpedcls", n=64)
    on_cpu = transform(images, generator())
    on_gpu = transform(images.cuda(), generator())
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=1e-4)
