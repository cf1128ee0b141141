"""A deterministic synthetic mini-decathlon in the benchmark's official on-disk format.

`generate(root)` writes all ten domains exactly as the devkit and data tars unpack
(docs/reference.md, section 1), so that the real preparation code runs on it unchanged:

    root/decathlon-1.0/annotations/<domain>_{train,val,test_stripped}.json   (COCO style)
    root/decathlon-1.0/data/<domain>/<split>/NNNNNN.jpg
    root/decathlon-1.0/SYNTHETIC.json      (generator version, seed, scale, sizes)
    root/labels_test.zip                   (<domain>_test.json with labels, like the release)

Every file is a function of (seed, scale, domains) alone: each class look and each image
comes from its own numpy Generator seeded by (seed, domain, ...), JPEG quality is fixed
and no time stamp is written, so two runs give byte-identical files. The folder is built
under a temporary name and renamed into place, so an interrupted run leaves nothing that
looks complete and is simply redone.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from data_prep.synthetic.domains import LOOKS
from decathlon.data.domains import ANNOTATION_FILES, ID_DOMAIN_FACTOR, ID_SPLIT_FACTOR, LABELLED_TEST_FILE, SPLIT_INDEX
from decathlon.data import DOMAIN_NAMES, SPLITS, get_domain

GENERATOR_VERSION = 2  # bump whenever any output changes, so that old folders are regenerated
DATASET_DIR = "decathlon-1.0"
LABELS_ZIP = "labels_test.zip"
MARKER_FILE = "SYNTHETIC.json"
JPEG_QUALITY = 90
MIN_IMAGES_PER_CLASS = 3   # per split, whatever the scale
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class SyntheticSize:
    num_classes: int
    train: int
    val: int
    test: int


# Small enough that pretraining on imagenet12 and then 9 methods x 9 domains with a tiny
# ResNet run in about ten minutes on a 2-core CPU.
DEFAULT_SIZES = {
    "aircraft": SyntheticSize(10, 240, 100, 100),
    "cifar100": SyntheticSize(10, 240, 100, 100),
    "daimlerpedcls": SyntheticSize(2, 240, 100, 100),
    "dtd": SyntheticSize(8, 200, 80, 80),
    "gtsrb": SyntheticSize(10, 240, 100, 100),
    "imagenet12": SyntheticSize(40, 2000, 400, 400),
    "omniglot": SyntheticSize(20, 240, 100, 100),
    "svhn": SyntheticSize(10, 240, 100, 100),
    "ucf101": SyntheticSize(8, 200, 80, 80),
    "vgg-flowers": SyntheticSize(10, 240, 100, 100),
}
# Class names in the style of the real files, formatted with c = 1..C (the real files sort
# 'TrafficSign1', 'TrafficSign10', 'TrafficSign2', ... as strings, and so do these).
CLASS_NAME_FORMATS = {"aircraft": "plane-{}", "cifar100": "object{}", "dtd": "texture{}",
                      "gtsrb": "TrafficSign{}", "imagenet12": "n{:08d}", "omniglot": "{}",
                      "ucf101": "Action{}", "vgg-flowers": "Flower{}"}
FIXED_CLASS_NAMES = {"daimlerpedcls": ["nonped", "ped"], "svhn": [str(digit) for digit in range(10)]}
# Image shapes as (probability, (min_width, max_width), (min_height, max_height)), inclusive,
# following the real data: the shorter side is 72 px (73 for a few aircraft and dtd images).
SQUARE = [(1.0, (72, 72), (72, 72))]
GEOMETRY = {
    "aircraft": [(0.97, (95, 168), (72, 72)), (0.03, (95, 168), (73, 73))],
    "cifar100": SQUARE,
    "daimlerpedcls": [(1.0, (72, 72), (144, 144))],
    "dtd": [(0.48, (72, 144), (72, 72)), (0.48, (72, 72), (73, 153)),
            (0.02, (73, 144), (73, 73)), (0.02, (73, 73), (74, 153))],
    "gtsrb": [(0.6, (72, 72), (72, 72)), (0.2, (73, 104), (72, 72)), (0.2, (72, 72), (73, 184))],
    "imagenet12": [(0.7, (96, 96), (72, 72)), (0.13, (72, 140), (72, 72)), (0.12, (72, 72), (73, 108)),
                   (0.05, (141, 422), (72, 72))],
    "omniglot": SQUARE,
    "svhn": SQUARE,
    "ucf101": SQUARE,
    "vgg-flowers": [(0.7, (72, 148), (72, 72)), (0.3, (72, 72), (73, 160))],
}


def split_sizes(domain: str, scale: float = 1.0) -> dict:
    """Images per split: the default times `scale`, at least MIN_IMAGES_PER_CLASS per class."""
    size = DEFAULT_SIZES[domain]
    floor = MIN_IMAGES_PER_CLASS * size.num_classes
    sizes = {split: max(floor, round(getattr(size, split) * scale)) for split in SPLITS}
    if sum(sizes.values()) >= ID_SPLIT_FACTOR:
        raise ValueError(f"{domain}: {sum(sizes.values())} images at scale {scale} do not fit the id scheme")
    return sizes


def class_names(domain: str) -> list:
    """The domain's category names, sorted as strings (category ids follow this order)."""
    if domain in FIXED_CLASS_NAMES:
        return sorted(FIXED_CLASS_NAMES[domain])
    return sorted(CLASS_NAME_FORMATS[domain].format(c) for c in range(1, DEFAULT_SIZES[domain].num_classes + 1))


def image_size(domain: str, rng: np.random.Generator) -> tuple:
    """(width, height) of one image, drawn from the domain's GEOMETRY."""
    shapes = GEOMETRY[domain]
    _, (min_width, max_width), (min_height, max_height) = shapes[rng.choice(len(shapes), p=[s[0] for s in shapes])]
    return int(rng.integers(min_width, max_width + 1)), int(rng.integers(min_height, max_height + 1))


def _split_labels(seed: int, domain: str, split: str, count: int) -> np.ndarray:
    """Balanced 0-based labels in a seeded random order."""
    rng = np.random.default_rng([seed, get_domain(domain).index, 100, SPLIT_INDEX[split]])
    return rng.permutation(np.arange(count) % DEFAULT_SIZES[domain].num_classes)


def _render_split(task) -> list:
    """Worker: write one split's JPEGs under `dataset_dir`; return its image entries and labels."""
    dataset_dir, seed, domain, split, first_k, count = task
    d = get_domain(domain).index
    prototype, render = LOOKS[domain]
    looks = [prototype(np.random.default_rng([seed, d, 0, label]), label)
             for label in range(DEFAULT_SIZES[domain].num_classes)]
    Path(dataset_dir, "data", domain, split).mkdir(parents=True, exist_ok=True)
    entries = []
    for i, label in enumerate(_split_labels(seed, domain, split, count)):
        k = first_k + i
        rng = np.random.default_rng([seed, d, 1 + SPLIT_INDEX[split], k])
        width, height = image_size(domain, rng)
        image = render(looks[label], rng, width, height)
        file_name = f"data/{domain}/{split}/{i + 1:06d}.jpg"
        image.save(Path(dataset_dir, file_name), quality=JPEG_QUALITY)
        image_id = d * ID_DOMAIN_FACTOR + SPLIT_INDEX[split] * ID_SPLIT_FACTOR + k
        entries.append(({"id": image_id, "width": width, "height": height, "file_name": file_name}, int(label)))
    return entries


def _coco_file(domain: str, entries: list, labelled: bool, seed: int, scale: float) -> bytes:
    d = get_domain(domain)
    info = {"description": f"Decathlon {domain}: SYNTHETIC images drawn by data_prep.synthetic, not the real data",
            "synthetic": True, "generator_version": GENERATOR_VERSION, "seed": seed, "scale": scale,
            "version": 1, "contributor": "data_prep.synthetic", "url": ""}
    annotations = [{"id": image["id"], "image_id": image["id"], "category_id": d.category_id_of(label),
                    "segmentation": [], "area": 0, "bbox": [], "iscrowd": 0} for image, label in entries]
    categories = [{"id": d.category_id_of(c), "name": name, "supercategory": domain}
                  for c, name in enumerate(class_names(domain))]
    data = {"info": info, "images": [image for image, _ in entries], "annotations": annotations if labelled else [],
            "categories": categories, "licenses": [{"id": 1, "name": "synthetic", "url": ""}]}
    return json.dumps(data).encode()


def _marker(seed: int, scale: float, domains: tuple) -> dict:
    return {"generator": "data_prep.synthetic", "version": GENERATOR_VERSION, "seed": seed, "scale": float(scale),
            "domains": {name: {**asdict(DEFAULT_SIZES[name]), **split_sizes(name, scale)} for name in domains}}


def _is_complete(root: Path, marker: dict) -> bool:
    try:
        found = json.loads((root / DATASET_DIR / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return False
    return found == marker and (root / LABELS_ZIP).is_file()


def _build(build_dir: Path, seed: int, scale: float, domains: tuple, workers: int) -> None:
    """Write the whole dataset and labels zip under `build_dir`."""
    dataset_dir = build_dir / DATASET_DIR
    tasks, split_of = [], []
    for domain in domains:
        first_k = 1
        for split, count in split_sizes(domain, scale).items():
            tasks.append((str(dataset_dir), seed, domain, split, first_k, count))
            split_of.append((domain, split))
            first_k += count
    # Biggest splits first so that the pool's workers finish together.
    order = sorted(range(len(tasks)), key=lambda t: -tasks[t][-1])
    if workers > 1:
        with Pool(min(workers, len(tasks))) as pool:
            results = pool.map(_render_split, [tasks[t] for t in order], chunksize=1)
    else:
        results = [_render_split(tasks[t]) for t in order]
    entries = {split_of[t]: result for t, result in zip(order, results)}

    (dataset_dir / "annotations").mkdir(parents=True)
    labelled_test = {}
    for domain in domains:
        for split in SPLITS:
            file = dataset_dir / "annotations" / ANNOTATION_FILES[split].format(domain=domain)
            file.write_bytes(_coco_file(domain, entries[domain, split], split != "test", seed, scale))
        labelled_test[LABELLED_TEST_FILE.format(domain=domain)] = _coco_file(
            domain, entries[domain, "test"], True, seed, scale)
    with zipfile.ZipFile(build_dir / LABELS_ZIP, "w") as archive:
        for name, data in labelled_test.items():
            member = zipfile.ZipInfo(name, ZIP_DATE)  # a fixed date keeps the zip byte-identical
            member.external_attr = 0o644 << 16
            archive.writestr(member, data, compress_type=zipfile.ZIP_DEFLATED)


def generate(root, seed: int = 0, scale: float = 1.0, domains=None, workers: int | None = None) -> Path:
    """Write the synthetic mini-decathlon under `root`; return `root/decathlon-1.0`.

    `scale` multiplies every split's default size; `domains` is an iterable of domain names
    (default: all ten); `workers` the number of processes (default: one per CPU; the
    output does not depend on it). A complete folder made with the same arguments is
    returned at once; one made with other arguments is replaced. A `decathlon-1.0`
    without SYNTHETIC.json may be real data and is never touched."""
    root = Path(root)
    requested = DOMAIN_NAMES if domains is None else {get_domain(name).name for name in domains}
    domains = tuple(name for name in DOMAIN_NAMES if name in requested)  # one order, whatever was asked
    seed, scale = int(seed), float(scale)
    if seed < 0 or not scale > 0 or not domains:
        raise ValueError(f"need seed >= 0, scale > 0 and at least one domain (got {seed}, {scale}, {domains})")
    marker = _marker(seed, scale, domains)
    target = root / DATASET_DIR
    if _is_complete(root, marker):
        return target
    if target.exists() and not (target / MARKER_FILE).is_file():
        raise FileExistsError(f"{target} exists and is not a synthetic decathlon (no {MARKER_FILE}); "
                              "move it away or choose another root")
    root.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root))
    try:
        _build(build_dir, seed, scale, domains, workers or os.cpu_count() or 1)
        (build_dir / DATASET_DIR / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n")
        if target.exists():  # an older synthetic copy: move it aside in one step, then delete
            target.rename(build_dir / "old")
        os.replace(build_dir / LABELS_ZIP, root / LABELS_ZIP)
        (build_dir / DATASET_DIR).rename(target)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return target
