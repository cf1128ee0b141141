"""What each synthetic domain looks like: LOOKS[domain] = (prototype, render).

`prototype(rng, label) -> dict` is called once per class with the class's own RNG and fixes
its look; `render(prototype, rng, width, height) -> RGB image` draws one instance of it
under random placement, scale, rotation, colour jitter, blur, noise and occluders, so that
a small CNN learns the classes well but not perfectly. imagenet12, the source domain,
draws its classes in the other domains' styles, so pretraining on it teaches what they need.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from data_prep.synthetic.draw import (MOTION_PATHS, SPRITE, TEXTURES, blend, chaikin, fill, filled_sprite, finish,
                                      gradient, hsv_colour, jitter, new_sprite, occlude, paste, pixel_box, polygon,
                                      random_colour, rotation_matrix, text_sprite, texture_mask, to_image, to_px,
                                      unit_grid)


# --- aircraft: side-view plane silhouettes on sky gradients ---------------------------
def aircraft_prototype(rng, label):
    return {"length": rng.uniform(0.8, 0.97), "thickness": rng.uniform(0.06, 0.15),
            "wing_x": rng.uniform(-0.25, 0.2), "chord": rng.uniform(0.12, 0.32),
            "sweep": rng.uniform(-0.05, 0.35), "span": rng.uniform(0.2, 0.5), "tail": rng.uniform(0.15, 0.4),
            "engines": int(rng.integers(0, 3)), "body": random_colour(rng, (0, 0.3), (0.6, 1.0)),
            "accent": random_colour(rng)}


def _plane_sprite(p, body, accent):
    sprite, draw = new_sprite()
    length, thick, x, chord, sweep, span = (p[k] for k in ("length", "thickness", "wing_x", "chord", "sweep", "span"))
    draw.polygon(to_px([(-length + 0.05, 0), (-length - 0.02, -thick - p["tail"]),
                        (-length + 0.12, -thick - p["tail"]), (-length + 0.35, 0)]), fill=fill(accent))
    draw.ellipse(pixel_box(-length, -thick, length, thick), fill=fill(body))
    draw.polygon(to_px([(x, 0), (x + chord, 0), (x + chord - sweep, span), (x - sweep + 0.4 * chord, span)]),
                 fill=fill(body * 0.8))
    for i in range(p["engines"]):
        ex, ey = x + 0.3 * chord - sweep * (0.35 + 0.3 * i), span * (0.35 + 0.3 * i)
        draw.ellipse(pixel_box(ex - 0.1, ey - 0.03, ex + 0.08, ey + 0.05), fill=fill(accent))
    draw.line(to_px([(-length * 0.8, thick * 0.2), (length * 0.85, thick * 0.2)]), fill=fill(accent), width=3)
    return sprite


def aircraft_render(p, rng, w, h):
    canvas = to_image(gradient(w, h, jitter((90, 140, 210), rng, 30), jitter((200, 215, 230), rng, 20),
                               rng.normal(0, 0.3)))  # sky
    occlude(canvas, rng, int(rng.integers(0, 3)), 0.3, colour=np.array((235, 235, 240)))  # clouds
    plane = _plane_sprite(p, jitter(p["body"], rng, 18), jitter(p["accent"], rng, 18))
    if rng.random() < 0.5:
        plane = plane.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    paste(canvas, plane, (w / 2 + rng.normal(0, 0.05 * w), h / 2 + rng.normal(0, 4)),
          w * rng.uniform(0.75, 1.0), rng.normal(0, 6))
    return finish(canvas, rng, noise=4, blur=(0.0, 1.0))


# --- cifar100: coloured objects on varied backgrounds ----------------------------------
def cifar_prototype(rng, label):
    sides = int(rng.integers(3, 9))
    return {"outline": polygon(32 if sides == 8 else sides, rng.choice([1.0, rng.uniform(0.4, 0.7)])),
            "aspect": rng.uniform(0.55, 1.0), "colour": random_colour(rng), "accent": random_colour(rng),
            "texture": TEXTURES[rng.integers(len(TEXTURES))] if rng.random() < 0.5 else None,
            "freq": rng.uniform(2, 5)}


def cifar_render(p, rng, w, h):
    canvas = to_image(gradient(w, h, rng.uniform(0, 255, 3), rng.uniform(0, 255, 3), rng.uniform(0, 6.3)))
    occlude(canvas, rng, int(rng.integers(0, 4)), 0.3)
    sprite = filled_sprite(p["outline"], jitter(p["colour"], rng, 20), jitter(p["accent"], rng, 20),
                           p["texture"], p["freq"])
    paste(canvas, sprite, (w / 2 + rng.normal(0, 5), h / 2 + rng.normal(0, 5)), min(w, h) * rng.uniform(0.5, 0.9),
          rng.normal(0, 25), p["aspect"] * rng.uniform(0.9, 1.1))
    occlude(canvas, rng, int(rng.integers(0, 2)), 0.12)
    return finish(canvas, rng, noise=6, blur=(0.0, 1.0))


# --- daimlerpedcls: grayscale upright figures vs street clutter ------------------------
def daimler_prototype(rng, label):
    return {"pedestrian": label == 1}  # labels follow the sorted names ('nonped', 'ped')


def _pedestrian(draw, rng, w, h, shade):
    unit = h * rng.uniform(0.7, 0.9) / 8  # a figure is eight heads tall
    cx, top = w / 2 + rng.normal(0, 3), h / 2 - 4 * unit + rng.normal(0, 4)
    stride, swing, girth = rng.uniform(-0.7, 0.7) * unit, rng.uniform(-0.6, 0.6) * unit, rng.uniform(0.6, 1.0)
    draw.ellipse([cx - 0.45 * unit, top, cx + 0.45 * unit, top + unit], fill=shade)
    draw.ellipse([cx - girth * unit, top + unit, cx + girth * unit, top + 4.4 * unit], fill=shade)
    for side in (-1, 1):
        hip, shoulder = cx + side * 0.3 * unit, cx + side * girth * unit
        draw.line([(hip, top + 4 * unit), (hip + side * stride, top + 8 * unit)], fill=shade,
                  width=max(2, int(0.6 * unit)))
        draw.line([(shoulder, top + 1.4 * unit), (shoulder + side * swing, top + 4.2 * unit)], fill=shade,
                  width=max(2, int(0.35 * unit)))


def daimler_render(p, rng, w, h):
    base = rng.uniform(70, 180)
    street = gradient(w, h, [base + rng.normal(0, 30)], [base + rng.normal(0, 30)], rng.normal(0, 0.5))
    canvas = to_image(street[..., 0])
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(3, 10))):  # street clutter, out of focus behind the subject
        x, y, rw, rh = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, w / 2), rng.uniform(3, h / 3)
        draw.rectangle([x - rw, y - rh, x + rw, y + rh], fill=int(np.clip(base + rng.normal(0, 45), 0, 255)))
    canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5)))
    draw = ImageDraw.Draw(canvas)
    shade = int(np.clip(base + (-1 if rng.random() < 0.7 else 1) * rng.uniform(60, 110), 0, 255))
    if p["pedestrian"]:
        _pedestrian(draw, rng, w, h, shade)
    elif rng.random() < 0.5:  # hard negative: an upright pole or sign post
        x, rw = w / 2 + rng.normal(0, 8), rng.uniform(3, 10)
        draw.rectangle([x - rw, rng.uniform(0, h / 3), x + rw, rng.uniform(2 * h / 3, h)], fill=shade)
    return finish(canvas, rng, noise=7, blur=(0.3, 1.2)).convert("RGB")


# --- dtd: textures ---------------------------------------------------------------------
def dtd_prototype(rng, label):
    return {"kind": TEXTURES[label % len(TEXTURES)], "freq": rng.uniform(2.5, 8), "angle": rng.uniform(0, np.pi),
            "sharpness": rng.uniform(1, 6), "ink": random_colour(rng, (0, 0.8), (0.1, 0.9)),
            "paper": random_colour(rng, (0, 0.6), (0.4, 1.0))}


def dtd_render(p, rng, w, h):
    mask = texture_mask(p["kind"], w, h, p["freq"] * rng.uniform(0.85, 1.15), p["angle"] + rng.normal(0, 0.2),
                        rng.uniform(0, 2 * np.pi), p["sharpness"])
    pixels = blend(mask, jitter(p["ink"], rng, 25), jitter(p["paper"], rng, 25))
    lighting = gradient(w, h, [rng.uniform(0.7, 1.1)], [rng.uniform(0.7, 1.1)], rng.uniform(0, 6.3))
    return finish(to_image(pixels * lighting), rng, noise=8, blur=(0.0, 1.0))


# --- gtsrb: road signs with coloured rims and inner glyphs ------------------------------
SIGN_SHAPES = {"circle": (32, 0.0), "triangle": (3, -np.pi / 2), "inverted": (3, np.pi / 2),
               "octagon": (8, np.pi / 8), "diamond": (4, 0.0), "square": (4, np.pi / 4)}
SIGN_COLOURS = ((200, 30, 30), (30, 60, 180), (230, 190, 20), (235, 235, 235), (25, 25, 25))
SIGN_GLYPHS = ("30", "50", "70", "80", "100", "!", "arrow", "bar", "cross", "none")


def gtsrb_prototype(rng, label):
    rim, inner = rng.choice(len(SIGN_COLOURS), 2, replace=False)
    return {"shape": list(SIGN_SHAPES)[label % len(SIGN_SHAPES)], "rim": np.array(SIGN_COLOURS[rim]),
            "inner": np.array(SIGN_COLOURS[inner]), "glyph": SIGN_GLYPHS[rng.integers(len(SIGN_GLYPHS))]}


def _sign_sprite(p):
    sprite, draw = new_sprite()
    sides, rotation = SIGN_SHAPES[p["shape"]]
    inner_radius = 0.55 if sides == 3 else 0.72
    draw.polygon(to_px(polygon(sides, rotation=rotation)), fill=fill(p["rim"]))
    draw.polygon(to_px(polygon(sides, rotation=rotation, radius=inner_radius)), fill=fill(p["inner"]))
    ink = (20, 20, 20) if p["inner"].mean() > 120 else (240, 240, 240)
    glyph, c, half = p["glyph"], SPRITE / 2, SPRITE / 2 * inner_radius * (0.5 if sides == 3 else 0.7)
    if glyph == "arrow":
        draw.polygon([(c - half, c + 0.3 * half), (c, c - half), (c + half, c + 0.3 * half)], fill=ink)
    elif glyph == "bar":
        draw.rectangle([c - half, c - 0.25 * half, c + half, c + 0.25 * half], fill=ink)
    elif glyph == "cross":
        draw.line([(c - half, c - half), (c + half, c + half)], fill=ink, width=int(half / 3))
        draw.line([(c - half, c + half), (c + half, c - half)], fill=ink, width=int(half / 3))
    elif glyph != "none":
        text = text_sprite(glyph, 1.2 * half, ink, bold=1)
        paste(sprite, text, (c, c), 1.6 * half if len(glyph) > 1 else 0.6 * half)
    return sprite


def gtsrb_render(p, rng, w, h):
    canvas = to_image(gradient(w, h, rng.uniform(0, 160, 3), rng.uniform(0, 255, 3), rng.uniform(0, 6.3)))
    occlude(canvas, rng, int(rng.integers(0, 5)), 0.3, colour=np.array((60, 90, 50)))  # foliage
    paste(canvas, _sign_sprite(p), (w / 2 + rng.normal(0, 3), h / 2 + rng.normal(0, 3)),
          min(w, h) * rng.uniform(0.65, 0.92), rng.normal(0, 5), rng.uniform(0.85, 1.0))
    canvas = to_image(np.asarray(canvas, np.float32) * rng.uniform(0.35, 1.15))  # dusk to glare
    return finish(canvas, rng, noise=5, blur=(0.0, 1.2))


# --- omniglot: white random-stroke glyphs on black (the Decathlon's copy is inverted) --
def omniglot_prototype(rng, label):
    strokes = []
    for _ in range(int(rng.integers(1, 4))):
        steps = rng.normal(0, 0.45, (int(rng.integers(2, 5)), 2))
        strokes.append(np.clip(rng.uniform(-0.6, 0.6, 2) + np.cumsum(np.vstack([[0, 0], steps]), 0), -0.8, 0.8))
    return {"strokes": strokes}


def omniglot_render(p, rng, w, h):
    angle, scale, shift = rng.normal(0, 0.12), rng.uniform(0.85, 1.1), rng.normal(0, 0.08, 2)
    canvas = Image.new("L", (w, h), 0)
    draw, width = ImageDraw.Draw(canvas), int(rng.integers(3, 5))
    for points in p["strokes"]:
        stroke = chaikin(points + rng.normal(0, 0.05, points.shape)) @ rotation_matrix(angle) * scale + shift
        draw.line(to_px(stroke, w, h), fill=255, width=width, joint="curve")
    return finish(canvas, rng, noise=2, blur=(0.0, 0.6)).convert("RGB")


# --- svhn: a centred digit over a house-number plate, with distractor digits ------------
def svhn_prototype(rng, label):
    return {"digit": str(label % 10)}


def svhn_render(p, rng, w, h):
    plate = random_colour(rng, (0, 0.7), (0.2, 0.95))
    canvas = to_image(gradient(w, h, jitter(plate, rng, 30), jitter(plate, rng, 30), rng.uniform(0, 6.3)))
    ink = random_colour(rng, (0, 0.8), (0.1, 1.0))
    ink = ink * 0.35 if plate.mean() > 128 else 255 - (255 - ink) * 0.35  # always readable
    size, bold = h * rng.uniform(0.65, 0.85), int(rng.integers(0, 3))
    digit = text_sprite(p["digit"], size, jitter(ink, rng, 15), bold)
    extent = digit.width * rng.uniform(0.8, 1.2)
    centre = (w / 2 + rng.normal(0, 3), h / 2 + rng.normal(0, 3))
    for side in (-1, 1):  # neighbours of the house number, partly out of the frame
        if rng.random() < 0.5:
            other = text_sprite(str(rng.integers(10)), size * rng.uniform(0.6, 0.85), jitter(ink, rng, 15), bold)
            x = centre[0] + side * (extent / 2 + rng.uniform(2, 8) + other.width / 2)
            paste(canvas, other, (x, centre[1] + rng.normal(0, 2)), other.width)
    paste(canvas, digit, centre, extent, rng.normal(0, 4), digit.width / extent)
    return finish(canvas, rng, noise=6, blur=(0.2, 1.3))


# --- ucf101: blurred actors leaving motion streaks over low-contrast scenes --------------
def ucf_prototype(rng, label):
    return {"sky": random_colour(rng, (0.1, 0.5), (0.5, 0.9)), "ground": random_colour(rng, (0.1, 0.6), (0.2, 0.6)),
            "horizon": rng.uniform(-0.3, 0.4), "actor": random_colour(rng, (0.4, 1.0), (0.4, 1.0)),
            "path": list(MOTION_PATHS)[label % len(MOTION_PATHS)], "direction": rng.uniform(0, 2 * np.pi),
            "length": rng.uniform(0.6, 1.2), "actors": int(rng.integers(1, 4)), "radius": rng.uniform(0.12, 0.25)}


def ucf_render(p, rng, w, h):
    _, yy = unit_grid(w, h)
    horizon = 1 / (1 + np.exp(-10 * (yy - p["horizon"] - rng.normal(0, 0.1))))
    sky, ground = (p["sky"], p["ground"]) if rng.random() < 0.7 else (random_colour(rng), random_colour(rng))
    canvas = to_image(blend(horizon, jitter(ground, rng, 40), jitter(sky, rng, 40))).convert("RGBA")
    turn = rotation_matrix(p["direction"] + rng.normal(0, 0.25))
    t = np.linspace(0, 1, 6)
    for _ in range(p["actors"]):
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        draw, colour = ImageDraw.Draw(layer), fill(jitter(p["actor"], rng, 20))
        track = MOTION_PATHS[p["path"]](t, p["length"] * rng.uniform(0.8, 1.2)) @ turn
        for step, (x, y) in zip(t, track - track.mean(0) + rng.normal(0, 0.3, 2)):
            r = p["radius"] * (0.7 + 0.3 * step)
            draw.ellipse(pixel_box(x - r, y - r, x + r, y + r, w, h), fill=colour + (int(60 + 195 * step),))
        canvas = Image.alpha_composite(canvas, layer)
    blurred = np.asarray(canvas.convert("RGB").filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.2))), np.float32)
    return finish(to_image(0.55 * blurred + 0.45 * 127), rng, noise=3, blur=(0, 0))  # low contrast, like UCF


# --- vgg-flowers: radial petal patterns over foliage --------------------------------------
def flower_prototype(rng, label):
    hue = rng.random()
    return {"petals": int(rng.integers(4, 13)), "length": rng.uniform(0.55, 0.95), "width": rng.uniform(0.15, 0.5),
            "petal": hsv_colour(hue, rng.uniform(0.5, 1), rng.uniform(0.6, 1)),
            "inner": hsv_colour(hue + rng.normal(0, 0.1), rng.uniform(0.3, 1), rng.uniform(0.5, 1)),
            "centre": random_colour(rng, (0.6, 1.0), (0.2, 0.9)), "centre_size": rng.uniform(0.1, 0.3),
            "layers": int(rng.integers(1, 3)), "pointed": bool(rng.random() < 0.5)}


def _flower_sprite(p, petal, inner, centre):
    sprite, draw = new_sprite()
    t = np.linspace(0, 1, 12)
    for layer, colour in zip(range(p["layers"]), (petal, inner)):
        length = p["length"] * (1 - 0.35 * layer)
        half_width = p["width"] * length * np.sin(np.pi * t) ** (1.0 if p["pointed"] else 0.5)
        outline = np.stack([np.concatenate([t, t[::-1]]) * length, np.concatenate([half_width, -half_width[::-1]])], 1)
        for i in range(p["petals"]):
            turn = rotation_matrix(np.pi * (2 * i + layer) / p["petals"])
            draw.polygon(to_px(outline @ turn), fill=fill(colour), outline=fill(colour * 0.7))
    r = p["centre_size"]
    draw.ellipse(pixel_box(-r, -r, r, r), fill=fill(centre))
    return sprite


def flower_render(p, rng, w, h):
    canvas = to_image(gradient(w, h, jitter((40, 80, 30), rng, 20), jitter((90, 120, 60), rng, 25),
                               rng.uniform(0, 6.3)))  # foliage
    occlude(canvas, rng, int(rng.integers(3, 9)), 0.3, colour=np.array((60, 110, 40)))  # leaves
    sprite = _flower_sprite(p, *(jitter(p[part], rng, 15) for part in ("petal", "inner", "centre")))
    paste(canvas, sprite, (w / 2 + rng.normal(0, 5), h / 2 + rng.normal(0, 5)), min(w, h) * rng.uniform(0.6, 1.0),
          rng.uniform(0, 360), rng.uniform(0.7, 1.0))
    return finish(canvas, rng, noise=5, blur=(0.0, 0.8))


# --- imagenet12: the source domain, every other domain's kind of picture ----------------
IMAGENET_KINDS = ("cifar100", "dtd", "vgg-flowers", "aircraft", "gtsrb", "ucf101", "omniglot", "svhn")


def imagenet_prototype(rng, label):
    kind = IMAGENET_KINDS[label % len(IMAGENET_KINDS)]
    return {"kind": kind, "look": LOOKS[kind][0](rng, label // len(IMAGENET_KINDS))}


def imagenet_render(p, rng, w, h):
    return LOOKS[p["kind"]][1](p["look"], rng, w, h)


LOOKS = {"aircraft": (aircraft_prototype, aircraft_render), "cifar100": (cifar_prototype, cifar_render),
         "daimlerpedcls": (daimler_prototype, daimler_render), "dtd": (dtd_prototype, dtd_render),
         "gtsrb": (gtsrb_prototype, gtsrb_render), "imagenet12": (imagenet_prototype, imagenet_render),
         "omniglot": (omniglot_prototype, omniglot_render), "svhn": (svhn_prototype, svhn_render),
         "ucf101": (ucf_prototype, ucf_render), "vgg-flowers": (flower_prototype, flower_render)}
