"""Decoding one image: the 73-px images resized as the public codes' Resize(72), and pixel
modes other than 8-bit RGB or grey converted faithfully or refused, never stored wrong."""
import io

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from data_prep.decode import DecodeTask, decode_one, stored_shapes
from data_prep import PrepareError

ORIGIN = "data/aircraft/train/000007.jpg"


def _task(image: Image.Image, file_format: str, **options) -> DecodeTask:
    buffer = io.BytesIO()
    image.save(buffer, format=file_format, **options)
    return DecodeTask(("train", 6), ORIGIN, "aircraft_train.json images[6]", buffer.getvalue(), *image.size)


def _gradient(width=80, height=72, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("width,height", [(100, 73), (73, 130), (121, 73), (73, 73), (153, 74)])
def test_odd_sizes_are_resized_as_the_public_pipeline_resized_them(width, height):
    """torchvision's Resize(72) on the decoded PIL image (bilinear, longer side floored),
    as the public codes applied it at every load: 100x73 becomes 98x72, not 99x72."""
    task = _task(Image.fromarray(_gradient(width, height)), "PNG")
    with Image.open(io.BytesIO(task.raw)) as image:
        expected = np.asarray(transforms.Resize(72)(image.convert("RGB")))
    stored = decode_one(task)
    assert stored.shape == expected.shape and min(stored.shape[:2]) == 72
    np.testing.assert_array_equal(stored, expected)
    assert tuple(stored_shapes(width, height)[0]) == expected.shape[:2]


def test_stored_shapes_floor_the_longer_side():
    heights, widths = [73, 73, 73, 72, 144], [100, 121, 73, 95, 72]
    assert stored_shapes(widths, heights).tolist() == [[72, 98], [72, 119], [72, 72], [72, 95], [144, 72]]


def test_16_bit_grey_under_a_jpg_name_keeps_its_high_byte():
    """A 16-bit grey PNG named .jpg: each value's high byte (value >> 8), not clipped to white."""
    values = (np.arange(72 * 80, dtype=np.uint32).reshape(72, 80) * 11).astype(np.uint16)
    stored = decode_one(_task(Image.fromarray(values), "PNG"))
    assert stored.shape == (72, 80, 3)
    for channel in range(3):
        np.testing.assert_array_equal(stored[..., channel], (values >> 8).astype(np.uint8))


@pytest.mark.parametrize("mode,file_format", [("P", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"),
                                              ("L", "JPEG"), ("1", "PNG")])
def test_modes_with_an_rgb_form_are_converted_as_the_public_loaders_did(mode, file_format):
    """convert("RGB"), as the public codes' image loader calls it: alpha dropped, the
    palette looked up, grey repeated, CMYK converted by PIL."""
    source = Image.fromarray(_gradient()).convert(mode)
    task = _task(source, file_format)
    stored = decode_one(task)
    with Image.open(io.BytesIO(task.raw)) as image:
        assert image.mode == mode
        np.testing.assert_array_equal(stored, np.asarray(image.convert("RGB")))
    if mode == "P":   # the palette is looked up, not the indices stored
        palette = np.array(source.getpalette(), np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(stored, palette[np.asarray(source)])


@pytest.mark.parametrize("mode,values", [("I", np.arange(72 * 80, dtype=np.int32) * 1000),
                                         ("F", np.linspace(-1.0, 1.0, 72 * 80, dtype=np.float32))])
def test_modes_of_unknown_range_are_refused_with_the_file_named(mode, values):
    task = _task(Image.fromarray(values.reshape(72, 80), mode), "TIFF")
    with pytest.raises(PrepareError, match=rf"^{ORIGIN}: the image is in PIL mode '{mode}' \(TIFF data\), which "
                                           r"has no faithful 8-bit RGB form; .* entry aircraft_train\.json images\[6\]$"):
        decode_one(task)
