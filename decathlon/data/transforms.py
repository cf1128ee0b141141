"""Per-domain augmentation as batched tensor ops on ragged batches of whole images.

The public codes augment one PIL image at a time in DataLoader worker processes. Here a
whole batch is augmented at once, on whatever device it already is (the GPU when there
is one). A batch is ragged (`Ragged`): the images keep their own sizes (shorter side 72,
longer side as released) and lie row-major, one after another, in one flat uint8 pixel
buffer. Each output pixel's source index is computed by index arithmetic (image start +
row * image width + column, columns reversed for a flip) and ONE index_select fetches the
whole batch's crops; one fused multiply-add converts to float and normalises. Randomness
comes only from an explicit torch.Generator, so the same generator state gives the same
crops whatever the batch's pixels are or where they live.

Two protocols (docs/reference.md, section 3), chosen by name; every crop is cut from the WHOLE
image, centre crops at torchvision's CenterCrop offsets (rounded as `crop_rounding` says,
see `centre_offsets`), random crops uniform over every position inside the image, as
torchvision's RandomCrop:

- 'spottune' (SpotTune's public code): no flip anywhere; random 64x64 crop at train time
  for aircraft, cifar100, dtd, ucf101, vgg-flowers, imagenet12 and the centre 72x72 at
  test; gtsrb, omniglot, svhn centre 72x72 at train and test; daimlerpedcls whole
  (144x72, HxW) at train and test.
- 'adapters' (the residual-adapter code): gtsrb, omniglot, svhn centre 72x72 with no
  flip; every other domain, daimlerpedcls included (its Resize(72) keeps 72 wide x 144
  high), random 64x64 crop + horizontal flip at train, centre 64x64 at test.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from decathlon.data.domains import get_domain

PROTOCOLS = ("spottune", "adapters")
# How a centre crop's offset int(round((size - crop) / 2.0)) rounds a half: Python 3's round
# (half to even) or Python 2's, under which the public codes ran (half away from zero).
CROP_ROUNDINGS = ("half_even", "half_away")
NETWORK_SIDE = 72   # the public codes' Resize(72): the stored shorter side
CROP_SIDE = 64
# SpotTune's code random-crops these at train time, feeds daimlerpedcls whole and centre-crops the rest to 72.
SPOTTUNE_RANDOM_CROP = frozenset({"aircraft", "cifar100", "dtd", "ucf101", "vgg-flowers", "imagenet12"})
SPOTTUNE_WHOLE = frozenset({"daimlerpedcls"})
# The residual-adapter code neither crops nor flips digits, signs and characters.
ADAPTERS_UNAUGMENTED = frozenset({"gtsrb", "omniglot", "svhn"})


class Ragged(NamedTuple):
    """A batch of whole images of different sizes, all on one device."""
    pixels: torch.Tensor  # uint8 (P, 3): RGB pixels, each image row-major, images one after another
    starts: torch.Tensor  # int64 (n,): index in `pixels` of each image's first pixel
    shapes: torch.Tensor  # int64 (n, 2): (height, width) of each image


class Crops(NamedTuple):
    """Where each image of a batch is cut: top-left corner and whether it is mirrored."""
    tops: torch.Tensor    # int64 (n,)
    lefts: torch.Tensor   # int64 (n,)
    flips: torch.Tensor   # bool (n,)


@dataclass(frozen=True)
class AugmentationSpec:
    """What one (domain, protocol, train) cuts from a whole image."""
    crop_hw: tuple       # (height, width) of the crop: the network input
    random_crop: bool    # at a uniformly random position per image, else at the centre
    flip: bool           # flip each image horizontally with probability 1/2

    @property
    def output_hw(self) -> tuple:
        return self.crop_hw

    @property
    def is_random(self) -> bool:
        return self.random_crop or self.flip


def augmentation_spec(domain: str, protocol: str, train: bool) -> AugmentationSpec:
    """The augmentation a protocol applies to one domain at train or test time."""
    centre_72 = AugmentationSpec((NETWORK_SIDE, NETWORK_SIDE), random_crop=False, flip=False)
    if protocol == "spottune":
        if domain in SPOTTUNE_WHOLE:
            return AugmentationSpec(get_domain(domain).image_hw, random_crop=False, flip=False)
        if train and domain in SPOTTUNE_RANDOM_CROP:
            return AugmentationSpec((CROP_SIDE, CROP_SIDE), random_crop=True, flip=False)
        return centre_72
    if protocol == "adapters":
        if domain in ADAPTERS_UNAUGMENTED:
            return centre_72
        return AugmentationSpec((CROP_SIDE, CROP_SIDE), random_crop=train, flip=train)
    raise ValueError(f"unknown augmentation protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")


def output_hw(domain: str, protocol: str, train: bool) -> tuple:
    """(height, width) of the network input for a domain under a protocol."""
    return augmentation_spec(domain, protocol, train).output_hw


def pack(images) -> Ragged:
    """A Ragged batch of (H, W, 3) uint8 tensors (a list, or the images of an NHWC tensor)."""
    images = list(images)
    shapes = torch.tensor([tuple(image.shape[:2]) for image in images], dtype=torch.int64).view(-1, 2)
    sizes = shapes.prod(dim=1)
    starts = torch.cumsum(sizes, 0) - sizes
    return Ragged(torch.cat([image.reshape(-1, 3) for image in images]), starts, shapes)


def centre_offsets(sizes: torch.Tensor, crop: int, rounding: str = "half_even") -> torch.Tensor:
    """Top or left offsets of centre crops as torchvision's CenterCrop computes them,
    int(round((size - crop) / 2.0)), with round as `rounding` says: 'half_even' (Python 3,
    and torch.round) or 'half_away' (Python 2: an odd margin puts the extra pixel on the
    left or top, 28.5 -> 29). The margin is never negative, so half away is (margin + 1) // 2."""
    margins = sizes - crop
    if rounding == "half_even":
        return torch.round(margins.to(torch.float32) / 2).to(torch.int64)
    if rounding == "half_away":
        return torch.div(margins + 1, 2, rounding_mode="floor")
    raise ValueError(f"unknown crop rounding {rounding!r}; valid: {', '.join(CROP_ROUNDINGS)}")


def uniform_offsets(counts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One integer in [0, counts[i]) per image, uniform (torchvision's RandomCrop draws
    randint(0, size - crop + 1)); on the generator's device, without a host sync."""
    draws = torch.rand(counts.shape, dtype=torch.float64, generator=generator, device=counts.device)
    return torch.minimum((draws * counts).to(torch.int64), counts - 1)


def crop_ragged(batch: Ragged, crops: Crops, crop_hw: tuple) -> torch.Tensor:
    """Crop image i of a ragged batch at (tops[i], lefts[i]), mirrored where flips[i]:
    uint8 (n, crop_h, crop_w, 3). One index_select of whole pixels over the flat buffer."""
    pixels, starts, shapes = batch
    crop_h, crop_w = crop_hw
    device = pixels.device
    rows = crops.tops[:, None] + torch.arange(crop_h, device=device)
    row_starts = starts[:, None] + rows * shapes[:, 1:2]
    forward = torch.arange(crop_w, device=device)
    cols = crops.lefts[:, None] + torch.where(crops.flips[:, None], crop_w - 1 - forward, forward)
    index = (row_starts[:, :, None] + cols[:, None, :]).view(-1)
    return pixels.index_select(0, index).view(len(starts), crop_h, crop_w, 3)


def _same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are one ('cuda' without an index is the current GPU)."""
    return a.type == b.type and (a.index == b.index or None in (a.index, b.index))


class BatchTransform:
    """callable(Ragged batch, generator) -> normalised float32 NCHW batch, same device."""

    def __init__(self, domain: str, spec: AugmentationSpec, channels_last: bool = False, protocol: str = "",
                 crop_rounding: str = "half_even"):
        if crop_rounding not in CROP_ROUNDINGS:
            raise ValueError(f"unknown crop rounding {crop_rounding!r}; valid: {', '.join(CROP_ROUNDINGS)}")
        self.domain, self.spec, self.channels_last, self.crop_rounding = domain, spec, channels_last, crop_rounding
        self.name = f"{domain} ({protocol})" if protocol else domain
        info = get_domain(domain)
        mean = torch.tensor(info.mean, dtype=torch.float32)
        std = torch.tensor(info.std, dtype=torch.float32)
        # x / 255 then (x - mean) / std, folded into one multiply-add per element.
        self._scale_shift = torch.stack([1.0 / (255.0 * std), -mean / std])
        self._constants = {}

    def __call__(self, batch: Ragged, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check(batch)
        return self.apply(batch, self.draw(batch.shapes, generator))

    def draw(self, shapes: torch.Tensor, generator: torch.Generator | None = None) -> Crops:
        """Crop positions and flips for images of (n, 2) `shapes`, on their device. The
        draws depend only on the generator and the shapes: tops, then lefts, then flips."""
        n, device = len(shapes), shapes.device
        if self.spec.is_random:
            if generator is None:
                raise ValueError(f"{self.name}: this transform is random (crop or flip); "
                                 "pass a torch.Generator so that runs are reproducible")
            if not _same_device(generator.device, device):
                raise ValueError(f"{self.name}: the generator is on {generator.device} but the batch on {device}")
        crop_h, crop_w = self.spec.crop_hw
        heights, widths = shapes[:, 0], shapes[:, 1]
        if self.spec.random_crop:
            tops = uniform_offsets(heights - crop_h + 1, generator)
            lefts = uniform_offsets(widths - crop_w + 1, generator)
        else:
            tops = centre_offsets(heights, crop_h, self.crop_rounding)
            lefts = centre_offsets(widths, crop_w, self.crop_rounding)
        if self.spec.flip:
            flips = torch.randint(2, (n,), generator=generator, device=device).bool()
        else:
            flips = torch.zeros(n, dtype=torch.bool, device=device)
        return Crops(tops, lefts, flips)

    def apply(self, batch: Ragged, crops: Crops) -> torch.Tensor:
        """The normalised crops of a batch at the given positions."""
        return self._normalise(crop_ragged(batch, crops, self.spec.crop_hw))

    def check_sizes(self, shapes: torch.Tensor, starts: torch.Tensor | None = None, num_pixels: int = 0) -> None:
        """ValueError unless every image is at least the crop size (and, given `starts`,
        lies inside a buffer of `num_pixels` pixels). Reads the values: call it on the host."""
        shapes = torch.as_tensor(shapes).cpu()
        small = torch.nonzero((shapes < torch.tensor(self.spec.crop_hw)).any(dim=1)).flatten()
        if len(small):
            (height, width), i = shapes[small[0]].tolist(), small[0].item()
            raise ValueError(f"{self.name}: image {i} is {height}x{width} (HxW), smaller than the "
                             f"{self.spec.crop_hw[0]}x{self.spec.crop_hw[1]} crop ({len(small)} such images)")
        if starts is not None:
            starts = starts.cpu()
            ends = starts + shapes.prod(dim=1)
            outside = torch.nonzero((starts < 0) | (ends > num_pixels)).flatten()
            if len(outside):
                i = outside[0].item()
                raise ValueError(f"{self.name}: image {i} spans pixels {starts[i].item()}..{ends[i].item()}, "
                                 f"outside the buffer of {num_pixels} pixels")

    def _check(self, batch: Ragged) -> None:
        """Types and shapes always; sizes only for CPU batches (on a GPU reading them would
        wait for the device: the loader checks every image of a split once instead)."""
        pixels, starts, shapes = batch
        if pixels.dtype != torch.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3:
            raise ValueError(f"{self.name}: expected pixels as a uint8 (P, 3) buffer, got {pixels.dtype} "
                             f"of shape {tuple(pixels.shape)}")
        if starts.dtype != torch.int64 or starts.ndim != 1 or shapes.dtype != torch.int64 \
                or tuple(shapes.shape) != (len(starts), 2):
            raise ValueError(f"{self.name}: expected starts int64 (n,) and shapes int64 (n, 2), got "
                             f"{starts.dtype} {tuple(starts.shape)} and {shapes.dtype} {tuple(shapes.shape)}")
        if not pixels.device == starts.device == shapes.device:
            raise ValueError(f"{self.name}: pixels, starts and shapes are on {pixels.device}, {starts.device} "
                             f"and {shapes.device}; expected one device")
        if pixels.device.type == "cpu":
            self.check_sizes(shapes, starts, len(pixels))

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC in [0, 255] -> normalised float32 NCHW, in place on the float copy.

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


def make_batch_transform(domain: str, protocol: str, train: bool, channels_last: bool = False,
                         crop_rounding: str = "half_even") -> BatchTransform:
    """The batched augmentation + normalisation of one domain under a protocol."""
    return BatchTransform(domain, augmentation_spec(domain, protocol, train), channels_last, protocol, crop_rounding)
