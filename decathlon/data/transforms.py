"""Per-domain augmentation as batched tensor ops on uint8 NHWC batches.

The public codes augment one PIL image at a time in DataLoader worker processes. Here a
whole batch is augmented at once, on whatever device it already is (the GPU when there
is one): one gather does every image's random crop and horizontal flip, one fused
multiply-add converts to float and normalises. Randomness comes only from an explicit
torch.Generator, so the same generator state gives the same batch on every device.

Two protocols (REFERENCE.md, section 3), chosen by name:

- 'spottune' (SpotTune's public code): no flip anywhere; random 64 crop at train time
  for aircraft, cifar100, dtd, ucf101, vgg-flowers, imagenet12 and the whole 72x72
  image at test; gtsrb, omniglot, svhn whole 72x72; daimlerpedcls whole 144x72.
- 'adapters' (the residual-adapter code): gtsrb, omniglot, svhn whole 72x72 with no
  flip; every other domain random 64 crop + flip at train, centre 64 at test, with
  daimlerpedcls first resized from 144x72 to 72x72.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from decathlon.data.domains import get_domain

PROTOCOLS = ("spottune", "adapters")
NETWORK_SIDE = 72   # side the public codes bring every domain to before cropping
CROP_SIDE = 64
# SpotTune's code random-crops these at train time and feeds every other domain whole.
SPOTTUNE_RANDOM_CROP = frozenset({"aircraft", "cifar100", "dtd", "ucf101", "vgg-flowers", "imagenet12"})
# The residual-adapter code neither crops nor flips digits, signs and characters.
ADAPTERS_UNAUGMENTED = frozenset({"gtsrb", "omniglot", "svhn"})


@dataclass(frozen=True)
class AugmentationSpec:
    """What one (domain, protocol, train) does to a stored image, in this order."""
    input_hw: tuple          # (height, width) of the stored images the batch must have
    resize_hw: tuple | None  # antialiased bilinear resize to this size first, if set
    crop_hw: tuple | None    # crop to this size; None keeps the whole image
    random_crop: bool        # crop at a random position per image, else at the centre
    flip: bool               # flip each image horizontally with probability 1/2

    @property
    def output_hw(self) -> tuple:
        return self.crop_hw or self.resize_hw or self.input_hw

    @property
    def is_random(self) -> bool:
        return self.random_crop or self.flip


def augmentation_spec(domain: str, protocol: str, train: bool) -> AugmentationSpec:
    """The augmentation a protocol applies to one domain at train or test time."""
    stored_hw = get_domain(domain).stored_hw
    crop_hw = (CROP_SIDE, CROP_SIDE)
    if protocol == "spottune":
        crop = train and domain in SPOTTUNE_RANDOM_CROP
        return AugmentationSpec(stored_hw, None, crop_hw if crop else None, random_crop=crop, flip=False)
    if protocol == "adapters":
        square = (NETWORK_SIDE, NETWORK_SIDE)
        resize_hw = None if stored_hw == square else square
        if domain in ADAPTERS_UNAUGMENTED:
            return AugmentationSpec(stored_hw, resize_hw, None, random_crop=False, flip=False)
        return AugmentationSpec(stored_hw, resize_hw, crop_hw, random_crop=train, flip=train)
    raise ValueError(f"unknown augmentation protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")


def output_hw(domain: str, protocol: str, train: bool) -> tuple:
    """(height, width) of the network input for a domain under a protocol."""
    return augmentation_spec(domain, protocol, train).output_hw


def centre_offset(size: int, crop: int) -> int:
    """Top or left offset of a centre crop, rounded as torchvision's CenterCrop does."""
    return int(round((size - crop) / 2.0))


def crop_and_flip(images: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor,
                  flips: torch.Tensor, crop_hw: tuple) -> torch.Tensor:
    """Crop image i of an NHWC batch at (tops[i], lefts[i]), mirrored where flips[i].

    One index_select of whole pixels (C values each) over the flattened batch: flipping
    just reverses the column indices of that image, so it costs nothing on top of the crop.
    """
    n, height, width, channels = images.shape
    crop_h, crop_w = crop_hw
    device = images.device
    rows = torch.arange(n, device=device)[:, None] * height + tops[:, None] + torch.arange(crop_h, device=device)
    forward = torch.arange(crop_w, device=device)
    cols = lefts[:, None] + torch.where(flips[:, None], crop_w - 1 - forward, forward)
    pixels = (rows[:, :, None] * width + cols[:, None, :]).view(-1)
    return images.reshape(n * height * width, channels).index_select(0, pixels).view(n, crop_h, crop_w, channels)


def resize_nhwc(images: torch.Tensor, size_hw: tuple) -> torch.Tensor:
    """Antialiased bilinear resize of an NHWC batch; float32 NHWC out, values in [0, 255]."""
    nchw = images.permute(0, 3, 1, 2).to(torch.float32)
    resized = F.interpolate(nchw, size=size_hw, mode="bilinear", antialias=True, align_corners=False)
    return resized.permute(0, 2, 3, 1)


class BatchTransform:
    """callable(uint8 NHWC batch, generator) -> normalised float32 NCHW batch, same device."""

    def __init__(self, domain: str, spec: AugmentationSpec, channels_last: bool = False):
        self.domain = domain
        self.spec = spec
        self.channels_last = channels_last
        info = get_domain(domain)
        mean = torch.tensor(info.mean, dtype=torch.float32)
        std = torch.tensor(info.std, dtype=torch.float32)
        # x / 255 then (x - mean) / std, folded into one multiply-add per element.
        self._scale_shift = torch.stack([1.0 / (255.0 * std), -mean / std])
        self._constants = {}

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(images)
        spec = self.spec
        x = resize_nhwc(images, spec.resize_hw) if spec.resize_hw else images
        height, width = x.shape[1:3]
        crop_h, crop_w = spec.output_hw
        if spec.is_random:
            tops, lefts, flips = self._draw(x.shape[0], height, width, generator)
            x = crop_and_flip(x, tops.to(x.device), lefts.to(x.device), flips.to(x.device), spec.output_hw)
        elif (crop_h, crop_w) != (height, width):
            top, left = centre_offset(height, crop_h), centre_offset(width, crop_w)
            x = x[:, top:top + crop_h, left:left + crop_w]
        return self._normalise(x)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or float NHWC in [0, 255] -> normalised float32 NCHW, in place where x is ours.

        Both layouts keep the multiply-add on a long contiguous inner axis, which is what
        makes it fast on a CPU: per channel over NCHW planes, or over NHWC rows with the
        constants tiled along the width (broadcasting over a last axis of 3 is ~10x slower).
        """
        n, height, width, channels = x.shape
        if self.channels_last:
            out = x.to(torch.float32).contiguous()
            scale, shift = self._constants_for(out.device, width)
            out.view(n * height, width * channels).mul_(scale).add_(shift)
            return out.permute(0, 3, 1, 2)
        out = x.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
        scale, shift = self._constants_for(out.device, None)
        return out.mul_(scale).add_(shift)

    def _constants_for(self, device: torch.device, tile_width: int | None):
        key = (device, tile_width)
        if key not in self._constants:
            constants = self._scale_shift.to(device)
            self._constants[key] = constants.repeat(1, tile_width) if tile_width else constants[:, :, None, None]
        scale, shift = self._constants[key]
        return scale, shift

    def _check(self, images: torch.Tensor) -> None:
        expected = (*self.spec.input_hw, 3)
        if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"{self.domain}: expected a uint8 batch of shape (N, {', '.join(map(str, expected))}), "
                             f"got {images.dtype} of shape {tuple(images.shape)}")

    def _draw(self, n: int, height: int, width: int, generator: torch.Generator | None):
        """Per-image crop offsets and flip flags, drawn on the generator's own device."""
        if generator is None:
            raise ValueError(f"{self.domain}: this transform is random (crop or flip); "
                             "pass a torch.Generator so that runs are reproducible")
        crop_h, crop_w = self.spec.output_hw
        device = generator.device
        if self.spec.random_crop:
            tops = torch.randint(height - crop_h + 1, (n,), generator=generator, device=device)
            lefts = torch.randint(width - crop_w + 1, (n,), generator=generator, device=device)
        else:
            tops = torch.full((n,), centre_offset(height, crop_h), device=device)
            lefts = torch.full((n,), centre_offset(width, crop_w), device=device)
        if self.spec.flip:
            flips = torch.randint(2, (n,), generator=generator, device=device).bool()
        else:
            flips = torch.zeros(n, dtype=torch.bool, device=device)
        return tops, lefts, flips


def make_batch_transform(domain: str, protocol: str, train: bool, channels_last: bool = False) -> BatchTransform:
    """The batched augmentation + normalisation of one domain under a protocol."""
    return BatchTransform(domain, augmentation_spec(domain, protocol, train), channels_last)
