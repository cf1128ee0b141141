"""The synthetic mini-decathlon: official format and id scheme, geometry, determinism,
atomic regeneration, distinct domains, learnable classes."""
from __future__ import annotations

import colorsys
import contextlib
import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from data_prep.synthetic import LABELS_ZIP, MARKER_FILE, generate, generator as synthetic, image_size, split_sizes
from decathlon.data import DOMAIN_NAMES, SPLITS, get_domain, parse_annotations
from decathlon.data.domains import ANNOTATION_FILES, ID_DOMAIN_FACTOR, ID_SPLIT_FACTOR, LABELLED_TEST_FILE, SPLIT_INDEX

TINY = 0.01  # every split falls to its floor of a few images per class
SMALL_DOMAINS = ("daimlerpedcls", "svhn")
# The real data's geometry (docs/reference.md, section 1): width range, height range, shorter sides.
GEOMETRY_RULES = {
    "aircraft": ((95, 168), (72, 73), {72, 73}),
    "cifar100": ((72, 72), (72, 72), {72}),
    "daimlerpedcls": ((72, 72), (144, 144), {72}),
    "dtd": ((72, 144), (72, 153), {72, 73}),
    "gtsrb": ((72, 104), (72, 184), {72}),
    "imagenet12": ((72, 422), (72, 422), {72}),
    "omniglot": ((72, 72), (72, 72), {72}),
    "svhn": ((72, 72), (72, 72), {72}),
    "ucf101": ((72, 72), (72, 72), {72}),
    "vgg-flowers": ((72, 148), (72, 200), {72}),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("tiny"), seed=0, scale=TINY, workers=2)


def _annotations(root: Path, domain: str, split: str) -> dict:
    return json.loads((root / "annotations" / ANNOTATION_FILES[split].format(domain=domain)).read_text())


def _digests(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _pixels(root: Path, domain: str, split: str, size=None) -> np.ndarray:
    """Images of a split as floats in [0, 1], resized to `size` (all the same) or as a flat pixel list."""
    images = [Image.open(root / entry["file_name"]) for entry in _annotations(root, domain, split)["images"]]
    if size:
        return np.stack([np.asarray(im.resize(size, Image.Resampling.BILINEAR), np.float32) / 255 for im in images])
    return np.concatenate([np.asarray(im, np.float32).reshape(-1, 3) / 255 for im in images])


def _labels(data: dict) -> np.ndarray:
    by_id = {a["image_id"]: a["category_id"] for a in data["annotations"]}
    return np.array([by_id[image["id"]] for image in data["images"]])


def test_layout_marker_and_info_say_synthetic(tiny):
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["decathlon-1.0", LABELS_ZIP]  # no temp folders left
    assert sorted(p.name for p in tiny.iterdir()) == [MARKER_FILE, "annotations", "data"]
    marker = json.loads((tiny / MARKER_FILE).read_text())
    assert marker["version"] == synthetic.GENERATOR_VERSION and marker["seed"] == 0 and marker["scale"] == TINY
    assert list(marker["domains"]) == list(DOMAIN_NAMES)
    for domain in DOMAIN_NAMES:
        assert sorted(p.name for p in (tiny / "data" / domain).iterdir()) == sorted(SPLITS)
        for split in SPLITS:
            data = _annotations(tiny, domain, split)
            assert marker["domains"][domain][split] == len(data["images"]) == split_sizes(domain, TINY)[split]
            assert len(list((tiny / "data" / domain / split).iterdir())) == len(data["images"])
            assert list(data) == ["info", "images", "annotations", "categories", "licenses"]
            assert data["info"]["synthetic"] is True and "synthetic" in data["info"]["description"].lower()


def test_every_id_follows_the_benchmark_scheme(tiny):
    for domain in DOMAIN_NAMES:
        d = get_domain(domain)
        next_k = 1  # k runs over train, then val, then test
        for split in SPLITS:
            data = _annotations(tiny, domain, split)
            names = [c["name"] for c in data["categories"]]
            assert names == sorted(names) and len(names) == synthetic.DEFAULT_SIZES[domain].num_classes
            assert len(names) <= d.num_classes
            assert [c["id"] for c in data["categories"]] == [d.index * ID_DOMAIN_FACTOR + c for c in range(1, len(names) + 1)]
            assert {c["supercategory"] for c in data["categories"]} == {domain}
            for i, image in enumerate(data["images"]):
                assert image["id"] == d.index * ID_DOMAIN_FACTOR + SPLIT_INDEX[split] * ID_SPLIT_FACTOR + next_k + i
                assert image["file_name"] == f"data/{domain}/{split}/{i + 1:06d}.jpg"
            next_k += len(data["images"])
            if split == "test":
                assert data["annotations"] == []
                continue
            assert [a["id"] for a in data["annotations"]] == [a["image_id"] for a in data["annotations"]]
            assert [a["image_id"] for a in data["annotations"]] == [image["id"] for image in data["images"]]
            counts = np.bincount(_labels(data) - d.index * ID_DOMAIN_FACTOR - 1, minlength=len(names))
            assert counts.min() >= synthetic.MIN_IMAGES_PER_CLASS  # balanced, every class present
    omniglot = [c["name"] for c in _annotations(tiny, "omniglot", "train")["categories"]]
    assert omniglot[:3] == ["1", "10", "11"]  # sorted as strings, like the real files


def test_pycocotools_and_the_project_reader_accept_every_file(tiny):
    for domain in DOMAIN_NAMES:
        for split in SPLITS:
            path = tiny / "annotations" / ANNOTATION_FILES[split].format(domain=domain)
            with contextlib.redirect_stdout(io.StringIO()):
                coco = COCO(str(path))
            assert len(coco.getImgIds()) == split_sizes(domain, TINY)[split]
            parsed = parse_annotations(path.read_bytes(), str(path), domain, split)
            assert parsed.labels_known == (split != "test")


def test_jpeg_sizes_match_the_json_and_the_domain_geometry(tiny):
    for domain, ((min_w, max_w), (min_h, max_h), shorter) in GEOMETRY_RULES.items():
        for split in SPLITS:
            for entry in _annotations(tiny, domain, split)["images"]:
                with Image.open(tiny / entry["file_name"]) as image:
                    assert image.format == "JPEG" and image.mode == "RGB"
                    assert image.size == (entry["width"], entry["height"]), entry["file_name"]
                w, h = image.size
                assert min_w <= w <= max_w and min_h <= h <= max_h and min(w, h) in shorter, (domain, w, h)


def test_image_size_covers_each_domain_geometry():
    for domain, ((min_w, max_w), (min_h, max_h), shorter) in GEOMETRY_RULES.items():
        rng = np.random.default_rng(0)
        sizes = np.array([image_size(domain, rng) for _ in range(3000)])
        assert sizes[:, 0].min() >= min_w and sizes[:, 0].max() <= max_w
        assert sizes[:, 1].min() >= min_h and sizes[:, 1].max() <= max_h
        assert set(sizes.min(1)) <= shorter
    rng = np.random.default_rng(0)
    imagenet = np.array([image_size("imagenet12", rng) for _ in range(3000)])
    assert np.mean(imagenet[:, 0] == 96) > 0.5 and imagenet[:, 0].max() > 300  # mostly 96 wide, sometimes long
    dtd = np.array([image_size("dtd", rng) for _ in range(3000)])
    assert (dtd[:, 0] > dtd[:, 1]).any() and (dtd[:, 1] > dtd[:, 0]).any() and (dtd.min(1) == 73).any()


def test_labels_zip_matches_the_stripped_test_files(tiny):
    with zipfile.ZipFile(tiny.parent / LABELS_ZIP) as archive:
        assert sorted(archive.namelist()) == sorted(LABELLED_TEST_FILE.format(domain=d) for d in DOMAIN_NAMES)
        for domain in DOMAIN_NAMES:
            labelled = json.loads(archive.read(LABELLED_TEST_FILE.format(domain=domain)))
            stripped = _annotations(tiny, domain, "test")
            assert labelled["images"] == stripped["images"] and labelled["categories"] == stripped["categories"]
            assert labelled["info"] == stripped["info"]
            assert [a["image_id"] for a in labelled["annotations"]] == [image["id"] for image in stripped["images"]]
            parse_annotations(archive.read(LABELLED_TEST_FILE.format(domain=domain)), "zip", domain, "test")


def test_same_arguments_give_identical_bytes_and_seeds_differ(tiny, tmp_path):
    first = generate(tmp_path / "a", seed=0, scale=TINY, domains=SMALL_DOMAINS, workers=1)
    second = generate(tmp_path / "b", seed=0, scale=TINY, domains=reversed(SMALL_DOMAINS), workers=2)
    assert _digests(first.parent) == _digests(second.parent)
    # A domain's files do not depend on which other domains were generated with it.
    full = _digests(tiny)
    assert all(full[name] == digest for name, digest in _digests(first).items() if name != MARKER_FILE)
    other = _digests(generate(tmp_path / "c", seed=1, scale=TINY, domains=SMALL_DOMAINS, workers=1))
    jpegs = [name for name in other if name.endswith(".jpg")]
    assert sum(other[name] != full[name] for name in jpegs) > 0.95 * len(jpegs)


def test_complete_folder_is_returned_without_rewriting(tiny):
    stamps = {p: p.stat().st_mtime_ns for p in tiny.parent.rglob("*")}
    started = time.perf_counter()
    assert generate(tiny.parent, seed=0, scale=TINY, workers=2) == tiny
    assert time.perf_counter() - started < 1.0
    assert {p: p.stat().st_mtime_ns for p in tiny.parent.rglob("*")} == stamps


def test_other_arguments_replace_a_synthetic_folder_but_never_real_data(tmp_path):
    root = generate(tmp_path, seed=0, scale=TINY, domains=["daimlerpedcls"], workers=1)
    generate(tmp_path, seed=3, scale=TINY, domains=["svhn"], workers=1)
    assert json.loads((root / MARKER_FILE).read_text())["seed"] == 3
    assert sorted(p.name for p in (root / "data").iterdir()) == ["svhn"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decathlon-1.0", LABELS_ZIP]
    (root / MARKER_FILE).unlink()  # now it looks like a real download
    before = _digests(root)
    with pytest.raises(FileExistsError, match="not a synthetic decathlon"):
        generate(tmp_path, seed=0, scale=TINY, domains=["svhn"], workers=1)
    assert _digests(root) == before


def test_interrupted_generate_leaves_nothing_and_is_redone(tmp_path, monkeypatch):
    render_split = synthetic._render_split
    calls = []

    def dies_on_second_split(task):
        calls.append(task)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return render_split(task)

    monkeypatch.setattr(synthetic, "_render_split", dies_on_second_split)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path, scale=TINY, domains=["daimlerpedcls"], workers=1)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    root = generate(tmp_path, scale=TINY, domains=["daimlerpedcls"], workers=1)
    assert (root / MARKER_FILE).is_file() and (tmp_path / LABELS_ZIP).is_file()


def _domain_statistics(root: Path, domain: str) -> np.ndarray:
    """Mean RGB, mean saturation, brightness spread and edge strength of a domain's train images."""
    pixels = _pixels(root, domain, "train")
    grey = _pixels(root, domain, "train", size=(48, 48)).mean(-1)
    saturation = np.mean([colorsys.rgb_to_hsv(*p)[1] for p in pixels[::97]])
    edges = np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=2)).mean()
    return np.array([*pixels.mean(0), saturation, pixels.mean(1).std(), edges])


def test_domains_differ_in_colour_and_structure(tiny):
    stats = {domain: _domain_statistics(tiny, domain) for domain in DOMAIN_NAMES}
    for i, a in enumerate(DOMAIN_NAMES):
        for b in DOMAIN_NAMES[i + 1:]:
            assert np.abs(stats[a] - stats[b]).max() > 0.05, (a, b, stats[a], stats[b])
    for grey in ("daimlerpedcls", "omniglot"):
        assert stats[grey][3] < 0.02  # no colour at all
    assert stats["omniglot"][:3].mean() < 0.2  # white strokes on black, like the real normalisation (mean .081)


def test_classes_are_learnable_but_not_trivial(tiny):
    """Nearest class mean on 16x16 pixels, trained on train + val, scored on the labelled test split."""
    with zipfile.ZipFile(tiny.parent / LABELS_ZIP) as archive:
        test_labels = {d: _labels(json.loads(archive.read(LABELLED_TEST_FILE.format(domain=d)))) for d in DOMAIN_NAMES}
    accuracy, chance = {}, {}
    for domain in DOMAIN_NAMES:
        train = np.concatenate([_pixels(tiny, domain, s, size=(16, 16)) for s in ("train", "val")]).reshape(-1, 768)
        labels = np.concatenate([_labels(_annotations(tiny, domain, s)) for s in ("train", "val")])
        classes = np.unique(labels)
        means = np.stack([train[labels == c].mean(0) for c in classes])
        test = _pixels(tiny, domain, "test", size=(16, 16)).reshape(-1, 768)
        predicted = classes[((test[:, None] - means[None]) ** 2).sum(-1).argmin(1)]
        accuracy[domain], chance[domain] = np.mean(predicted == test_labels[domain]), 1 / len(classes)
    clearly_learnt = [d for d in DOMAIN_NAMES if accuracy[d] > 2 * chance[d] and accuracy[d] > chance[d] + 0.2]
    assert len(clearly_learnt) >= 3, accuracy
    assert min(accuracy.values()) < 0.5 and max(accuracy.values()) < 1.0, accuracy
