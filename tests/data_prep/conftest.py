"""Shared fixtures: a devkit-shaped source built around real entries of labels_test.zip.

(pytest runs with --import-mode=importlib, so test modules cannot import this file:
helpers are handed out as fixtures.)

The test split of each fixture domain is a sample of the real labelled test file (real
ids, file names, sizes, labels and categories); train and val are small made-up splits
that follow the same id scheme. JPEGs are drawn with PIL at the listed sizes: smooth
colour ramps, so that a resize changes them little.
"""
from __future__ import annotations

import io
import json
import random
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from decathlon.data.domains import ID_DOMAIN_FACTOR, ID_SPLIT_FACTOR
from decathlon.data import get_domain
from decathlon.resources import labels_test_zip

# Test positions sampled per domain; aircraft and dtd include their 73-px images.
SAMPLES = {
    "aircraft": [*range(17), 1276, 3195, 3255],
    "daimlerpedcls": list(range(0, 19600, 980)),
    "dtd": [*range(18), 712, 1857],
    "imagenet12": list(range(0, 48238, 2412)),
}
TRAIN_VAL_SIZE = 6


@dataclass
class DevkitFixture:
    parent: Path        # holds decathlon-1.0/ and labels_test.zip
    labels_zip: Path
    files: dict         # annotation file name -> its JSON object
    domains: tuple = tuple(SAMPLES)
    train_val_size: int = TRAIN_VAL_SIZE
    shard_size: int = 8  # small, so that every test split has several shards

    @property
    def root(self) -> Path:
        return self.parent / "decathlon-1.0"


def draw_jpeg(path: Path, width: int, height: int, seed: int, grey: bool = False) -> None:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / 40.0
    phases = rng.uniform(0, 6.3, size=3)
    channels = [127 + 100 * np.sin(x * (1 + c) * 0.7 + y * (2 - c) * 0.5 + phases[c]) for c in range(3)]
    pixels = np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    (image.convert("L") if grey else image).save(path, quality=95)


def _coco(images, annotations, categories) -> dict:
    return {"info": {}, "images": images, "annotations": annotations, "categories": categories, "licenses": []}


def _made_up_split(domain: str, split: str, first_k: int, sizes: list, categories: list) -> dict:
    d = get_domain(domain)
    images, annotations = [], []
    for n, (width, height) in enumerate(sizes):
        image_id = d.index * ID_DOMAIN_FACTOR + (1 if split == "val" else 0) * ID_SPLIT_FACTOR + first_k + n
        images.append({"id": image_id, "width": width, "height": height,
                       "file_name": f"data/{domain}/{split}/{n + 1:06d}.jpg"})
        category = categories[(7 * n + len(split)) % len(categories)]["id"]
        annotations.append({"id": image_id, "image_id": image_id, "category_id": category,
                            "segmentation": [], "area": 0, "bbox": [], "iscrowd": 0})
    return _coco(images, annotations, categories)


def build_devkit(parent: Path) -> DevkitFixture:
    root = parent / "decathlon-1.0"
    files, labelled = {}, {}
    with zipfile.ZipFile(labels_test_zip()) as archive:
        for domain, positions in SAMPLES.items():
            real = json.loads(archive.read(f"{domain}_test.json"))
            images = [real["images"][i] for i in positions]
            annotations = [real["annotations"][i] for i in positions]
            assert [a["image_id"] for a in annotations] == [im["id"] for im in images]
            labelled[f"{domain}_test.json"] = _coco(images, annotations, real["categories"])
            files[f"{domain}_test_stripped.json"] = _coco(images, [], real["categories"])
            sizes = [(im["width"], im["height"]) for im in images[:TRAIN_VAL_SIZE]]
            files[f"{domain}_train.json"] = _made_up_split(domain, "train", 1, sizes, real["categories"])
            files[f"{domain}_val.json"] = _made_up_split(domain, "val", 1 + TRAIN_VAL_SIZE, sizes[::-1],
                                                         real["categories"])
    (root / "annotations").mkdir(parents=True)
    for name, data in files.items():
        (root / "annotations" / name).write_text(json.dumps(data))
        for image in data["images"]:
            draw_jpeg(root / image["file_name"], image["width"], image["height"], seed=image["id"],
                      grey=name.startswith("daimlerpedcls"))
    labels_zip = parent / "labels_test.zip"
    with zipfile.ZipFile(labels_zip, "w") as archive:
        for name, data in labelled.items():
            archive.writestr(name, json.dumps(data))
    return DevkitFixture(parent, labels_zip, {**files, **labelled})


def _make_tarballs(root: Path, dest: Path, drop=(), inner_prefix: str = "", imagenet_prefix: str = "data/") -> Path:
    """Package an extracted decathlon-1.0 folder as the three downloads, members shuffled."""
    dest.mkdir(parents=True, exist_ok=True)
    order = random.Random(0)
    with tarfile.open(dest / "decathlon-1.0-devkit.tar.gz", "w:gz") as devkit:
        devkit.add(root / "annotations", arcname="decathlon-1.0/annotations")

    def add_images(tar: tarfile.TarFile, domain: str, prefix: str) -> None:
        files = sorted((root / "data" / domain).rglob("*.jpg"))
        order.shuffle(files)
        for file in files:
            relative = file.relative_to(root).as_posix()
            if relative not in drop:
                tar.add(file, arcname=prefix + file.relative_to(root / "data").as_posix())

    with tarfile.open(dest / "decathlon-1.0-data.tar.gz", "w:gz") as data:
        for domain in sorted(p.name for p in (root / "data").iterdir() if p.name != "imagenet12"):
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as inner:
                add_images(inner, domain, inner_prefix)
            info = tarfile.TarInfo(f"{domain}.tar")
            info.size = buffer.tell()
            buffer.seek(0)
            data.addfile(info, buffer)
    with tarfile.open(dest / "decathlon-1.0-data-imagenet.tar", "w") as imagenet:
        add_images(imagenet, "imagenet12", imagenet_prefix)
    return dest


def _read_split(out: Path, domain: str, split: str) -> tuple:
    """(images: a list of (H, W, 3) uint8 arrays, labels, image_ids) of a prepared split, in
    manifest order, read with h5py alone as the manifest's schema describes."""
    entry = json.loads((out / "manifest.json").read_text())["domains"][domain]["splits"][split]
    images, labels, image_ids = [], [], []
    for shard in entry["shards"]:
        with h5py.File(out / shard["file"], "r") as f:
            pixels, offsets, shapes = f["pixels"][:], f["offsets"][:], f["shapes"][:]
            images += [pixels[a:b].reshape(h, w, 3) for a, b, (h, w) in zip(offsets[:-1], offsets[1:], shapes)]
            labels.append(f["labels"][:])
            image_ids.append(f["image_ids"][:])
    return images, np.concatenate(labels), np.concatenate(image_ids)


def _leftovers(out: Path) -> list:
    return sorted(str(p) for p in out.rglob("*.tmp"))


@pytest.fixture
def make_tarballs():
    """make_tarballs(decathlon-1.0 folder, dest, drop=(file names), inner_prefix, imagenet_prefix)."""
    return _make_tarballs


@pytest.fixture
def read_split():
    """read_split(out, domain, split) -> (list of whole images, labels, image_ids)."""
    return _read_split


@pytest.fixture
def leftovers():
    """leftovers(out) -> the *.tmp files under out."""
    return _leftovers


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> DevkitFixture:
    return build_devkit(tmp_path_factory.mktemp("devkit"))


@pytest.fixture
def devkit(pristine, tmp_path) -> DevkitFixture:
    """A private copy of the fixture source, free to break."""
    shutil.copytree(pristine.parent, tmp_path / "source")
    return DevkitFixture(tmp_path / "source", tmp_path / "source" / "labels_test.zip", pristine.files)


@pytest.fixture(scope="session")
def prepared(pristine, tmp_path_factory) -> Path:
    """The pristine fixture prepared once (read-only for tests)."""
    from data_prep import prepare
    out = tmp_path_factory.mktemp("prepared")
    prepare(pristine.parent, out, domains=pristine.domains, workers=2, shard_size=pristine.shard_size,
            progress=False)
    return out
