"""Drawing primitives of the synthetic mini-decathlon: colours, gradients, textures,
polygons, strokes, text, sprites and the finishing blur and noise.

Shapes are given in a unit frame where the shorter side of the image (or of the square
sprite an object is drawn on) spans [-1, 1]. Only numpy and PIL are used, so the same RNG
state always gives the same pixels.
"""
from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

BILINEAR = Image.Resampling.BILINEAR
SPRITE = 128  # side of the square canvas objects are drawn on before placement
TEXTURE_SIGNALS = {  # periodic signals of the rotated, scaled coordinates a and b
    "stripes": lambda a, b: np.sin(a),
    "checks": lambda a, b: 2 * np.sin(a) * np.sin(b),
    "dots": lambda a, b: np.cos(a) + np.cos(b) - 1,
    "waves": lambda a, b: np.sin(a + 1.5 * np.sin(b / 2)),
    "rings": lambda a, b: np.sin(np.hypot(a, b)),
    "zigzag": lambda a, b: np.sin(a + 2 * np.abs(np.mod(b / np.pi, 2) - 1) * np.pi),
    "grid": lambda a, b: np.maximum(np.cos(a), np.cos(b)) - 0.7,
    "crosshatch": lambda a, b: np.maximum(np.sin((a + b) / 1.4), np.sin((a - b) / 1.4)) - 0.5,
}
TEXTURES = tuple(TEXTURE_SIGNALS)
MOTION_PATHS = {  # (steps in [0, 1], length) -> positions along the path, starting at the origin
    "line": lambda t, length: np.stack([t * length, 0 * t], 1),
    "arc": lambda t, length: length / 2 * np.stack([np.sin(2.5 * t), 1 - np.cos(2.5 * t)], 1),
    "bounce": lambda t, length: np.stack([t * length, -0.4 * np.abs(np.sin(3 * np.pi * t))], 1),
    "circle": lambda t, length: length / 2 * np.stack([np.cos(2 * np.pi * t) - 1, np.sin(2 * np.pi * t)], 1),
}


def hsv_colour(hue, saturation, value) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value)) * 255


def random_colour(rng, saturation=(0.5, 1.0), value=(0.5, 1.0)) -> np.ndarray:
    return hsv_colour(rng.random(), rng.uniform(*saturation), rng.uniform(*value))


def jitter(colour, rng, sd) -> np.ndarray:
    return np.clip(colour + rng.normal(0, sd, 3), 0, 255)


def fill(colour) -> tuple:
    """A colour array as the integer tuple ImageDraw wants."""
    return tuple(int(c) for c in colour)


def unit_grid(w, h):
    half = min(w, h) / 2
    xs = (np.arange(w, dtype=np.float32) - w / 2 + 0.5) / half
    ys = (np.arange(h, dtype=np.float32) - h / 2 + 0.5) / half
    return np.broadcast_to(xs, (h, w)), np.broadcast_to(ys[:, None], (h, w))


def to_px(points, w=SPRITE, h=SPRITE) -> list:
    half = min(w, h) / 2
    return [(w / 2 + x * half, h / 2 + y * half) for x, y in points]


def pixel_box(x0, y0, x1, y1, w=SPRITE, h=SPRITE) -> tuple:
    """The unit-frame box (x0, y0)-(x1, y1) as the pixel tuple ImageDraw.ellipse wants."""
    return sum(to_px([(x0, y0), (x1, y1)], w, h), ())


def rotation_matrix(angle) -> np.ndarray:
    """Right-multiply row vectors by this (points @ rotation_matrix(a)) to turn them by `angle`."""
    return np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])


def to_image(pixels) -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def gradient(w, h, start, end, angle=0.0) -> np.ndarray:
    """HxWx3 float pixels going from `start` to `end` along direction `angle` (radians)."""
    xx, yy = unit_grid(w, h)
    t = np.clip(0.5 + 0.5 * (xx * np.sin(angle) + yy * np.cos(angle)), 0, 1)[..., None]
    return (1 - t) * np.asarray(start, np.float32) + t * np.asarray(end, np.float32)


def texture_mask(kind, w, h, freq, angle, phase, sharpness=4.0) -> np.ndarray:
    """HxW values in [0, 1]: a periodic pattern, `freq` half-periods per unit."""
    xx, yy = unit_grid(w, h)
    a = np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase
    b = np.pi * freq * (yy * np.cos(angle) - xx * np.sin(angle)) + phase
    return 0.5 + 0.5 * np.tanh(sharpness * TEXTURE_SIGNALS[kind](a, b))


def blend(mask, colour_a, colour_b) -> np.ndarray:
    return mask[..., None] * np.asarray(colour_a) + (1 - mask[..., None]) * np.asarray(colour_b)


def polygon(sides, star=1.0, rotation=0.0, radius=0.95) -> np.ndarray:
    """Regular polygon (or a star when star < 1: inner/outer radius) in unit coordinates."""
    corners = sides * (2 if star < 1 else 1)
    angles = rotation + 2 * np.pi * np.arange(corners) / corners
    radii = radius * np.where(np.arange(corners) % 2, star, 1.0)
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)


def chaikin(points, rounds=3) -> np.ndarray:
    """Smooth a polyline by corner cutting (keeps its end points)."""
    for _ in range(rounds):
        near, far = 0.75 * points[:-1] + 0.25 * points[1:], 0.25 * points[:-1] + 0.75 * points[1:]
        points = np.concatenate([points[:1], np.stack([near, far], 1).reshape(-1, 2), points[-1:]])
    return points


def new_sprite():
    sprite = Image.new("RGBA", (SPRITE, SPRITE), (0, 0, 0, 0))
    return sprite, ImageDraw.Draw(sprite)


def filled_sprite(points, colour, accent=None, texture=None, freq=3.0) -> Image.Image:
    """A polygon filled flat, or with a two-colour texture when `texture` is given."""
    mask = Image.new("L", (SPRITE, SPRITE), 0)
    ImageDraw.Draw(mask).polygon(to_px(points), fill=255)
    pattern = texture_mask(texture, SPRITE, SPRITE, freq, 0.0, 0.0) if texture else np.ones((SPRITE, SPRITE))
    sprite = to_image(blend(pattern, colour, accent if texture else colour)).convert("RGBA")
    sprite.putalpha(mask)
    return sprite


def paste(canvas, sprite, centre, extent, angle=0.0, squash=1.0) -> None:
    """Scale `sprite` to `extent` px wide (x `squash` high), rotate (degrees), paste at centre."""
    size = (max(1, round(extent)), max(1, round(extent * squash * sprite.height / sprite.width)))
    placed = sprite.resize(size, BILINEAR).rotate(angle, BILINEAR, expand=True)
    canvas.paste(placed, (round(centre[0] - placed.width / 2), round(centre[1] - placed.height / 2)), placed)


@lru_cache(maxsize=64)
def _font(size):
    return ImageFont.load_default(size=size)


def text_sprite(text, size, colour, bold=0) -> Image.Image:
    """`text` in Pillow's built-in scalable font, tightly cropped, on a transparent sprite."""
    font = _font(int(size))
    left, top, right, bottom = font.getbbox(text, stroke_width=bold)
    sprite = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
    ImageDraw.Draw(sprite).text((1 - left, 1 - top), text, font=font, fill=fill(colour),
                                stroke_width=bold, stroke_fill=fill(colour))
    return sprite


def occlude(canvas, rng, count, max_fraction=0.25, colour=None) -> None:
    """Random ellipses and rectangles: clutter behind objects or occluders in front of them."""
    draw, (w, h) = ImageDraw.Draw(canvas), canvas.size
    for _ in range(count):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.05, max_fraction, 2) * min(w, h)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([cx - rx, cy - ry, cx + rx, cy + ry],
              fill=fill(jitter(colour, rng, 25) if colour is not None else rng.uniform(0, 255, 3)))


def finish(canvas, rng, noise=5.0, blur=(0.0, 0.8)) -> Image.Image:
    radius = rng.uniform(*blur)
    if radius > 0.1:
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius))
    pixels = np.asarray(canvas, np.float32)
    return to_image(pixels + noise * rng.standard_normal(pixels.shape, dtype=np.float32))
