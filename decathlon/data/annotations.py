"""Read and check the Decathlon's COCO-style annotation files.

pycocotools builds the index (the authors' code reads these files with it), but it
silently keeps the last of duplicate ids and accepts any category id, so every entry is
checked against the benchmark's id scheme (docs/reference.md, section 1) first. Errors name
the file, the entry and the field, and say what was expected.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decathlon.data.domains import (DOMAIN_NAMES, ID_DOMAIN_FACTOR, ID_SPLIT_FACTOR, SPLIT_INDEX,
                               Domain, get_domain)

_FILE_RE = re.compile(r"^(?P<domain>[a-z0-9-]+)_(?P<split>train|val|test)(?P<stripped>_stripped)?\.json$")


class AnnotationError(ValueError):
    """An annotation file that breaks the benchmark's format or id scheme."""


@dataclass
class SplitAnnotations:
    """One split of one domain, in the order of the file's `images` list."""
    domain: Domain
    split: str
    source: str                 # where it was read from, for error messages
    image_ids: np.ndarray       # int64, official ids
    file_names: list
    widths: np.ndarray
    heights: np.ndarray
    labels: np.ndarray          # int64, 0-based; -1 where the file has no labels
    class_names: list
    sha256: str

    @property
    def labels_known(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    def entry(self, i: int) -> str:
        """How error messages name image i: its file and its annotation entry."""
        return f"{self.file_names[i]} (images[{i}], image_id {int(self.image_ids[i])})"


def _require(cond: bool, source: str, where: str, message: str) -> None:
    if not cond:
        raise AnnotationError(f"{source}: {where}: {message}")


def _check_categories(categories, domain: Domain, source: str) -> list:
    _require(isinstance(categories, list) and categories, source, "categories", "expected a non-empty list")
    _require(len(categories) <= domain.num_classes, source, "categories",
             f"{len(categories)} categories, expected at most {domain.num_classes} for {domain.name}")
    by_id = {}
    for i, cat in enumerate(categories):
        cid = cat.get("id") if isinstance(cat, dict) else None
        _require(isinstance(cid, int), source, f"categories[{i}]", "field 'id' missing or not an integer")
        _require(cid not in by_id, source, f"categories[{i}]", f"duplicate category id {cid}")
        by_id[cid] = str(cat.get("name", ""))
    expected = [domain.category_id_of(c) for c in range(len(categories))]
    _require(sorted(by_id) == expected, source, "categories",
             f"ids must be {expected[0]}..{expected[-1]} (d*10**7 + 1..C with d={domain.index})")
    names = [by_id[cid] for cid in expected]
    _require(names == sorted(names), source, "categories",
             "names must be sorted as strings in id order (the benchmark's convention)")
    return names


def _check_images(images, domain: Domain, split: str, source: str):
    _require(isinstance(images, list) and images, source, "images", "expected a non-empty list")
    split_offset = domain.index * ID_DOMAIN_FACTOR + SPLIT_INDEX[split] * ID_SPLIT_FACTOR
    # k runs over train, val, test; below 10**5 images in all (every domain but imagenet12)
    # it cannot carry into the split digit, which must then read exactly s.
    split_digit_exact = sum(domain.sizes.values()) < ID_SPLIT_FACTOR
    name_re = re.compile(rf"^data/{re.escape(domain.name)}/{split}/\d{{6}}\.jpg$")
    ids, names, widths, heights, seen = [], [], [], [], {}
    for i, img in enumerate(images):
        where = f"images[{i}]"
        _require(isinstance(img, dict), source, where, "expected an object")
        iid, name = img.get("id"), img.get("file_name")
        _require(isinstance(iid, int), source, where, "field 'id' missing or not an integer")
        _require(isinstance(name, str) and name_re.match(name) is not None, source, f"{where} (id {iid})",
                 f"field 'file_name' is {name!r}, expected 'data/{domain.name}/{split}/NNNNNN.jpg'")
        _require(iid // ID_DOMAIN_FACTOR == domain.index and iid - split_offset >= 1, source,
                 f"{where} ({name})", f"field 'id' {iid} does not follow d*10**7 + s*10**5 + k "
                 f"with d={domain.index}, s={SPLIT_INDEX[split]} ({split}), k>=1")
        _require(not split_digit_exact or (iid - split_offset) < ID_SPLIT_FACTOR, source, f"{where} ({name})",
                 f"field 'id' {iid} has split digit {(iid // ID_SPLIT_FACTOR) % 100}, expected {SPLIT_INDEX[split]} ({split})")
        _require(iid not in seen, source, f"{where} ({name})", f"duplicate image id {iid} (also images[{seen.get(iid)}])")
        seen[iid] = i
        for field in ("width", "height"):
            _require(isinstance(img.get(field), int) and img[field] > 0, source, f"{where} ({name})",
                     f"field '{field}' missing or not a positive integer")
        ids.append(iid), names.append(name), widths.append(img["width"]), heights.append(img["height"])
    _require(len(set(names)) == len(names), source, "images", "duplicate file_name entries")
    return np.asarray(ids, np.int64), names, np.asarray(widths, np.int64), np.asarray(heights, np.int64)


def _check_annotations(annotations, ids: np.ndarray, names: list, domain: Domain, num_classes: int,
                       source: str) -> None:
    """One annotation per image, id == image_id, category inside the domain's range."""
    position = {int(iid): i for i, iid in enumerate(ids)}
    labels = np.full(len(ids), -1, np.int64)  # which images have an annotation yet
    for j, ann in enumerate(annotations):
        where = f"annotations[{j}]"
        _require(isinstance(ann, dict), source, where, "expected an object")
        iid, cid = ann.get("image_id"), ann.get("category_id")
        _require(iid in position, source, f"{where} (image_id {iid})", "refers to no entry of 'images'")
        i = position[iid]
        where = f"{where} ({names[i]})"
        _require(ann.get("id") == iid, source, where, f"field 'id' is {ann.get('id')!r}, expected it to equal image_id {iid}")
        _require(labels[i] < 0, source, where, f"duplicate annotation for image_id {iid}")
        _require(isinstance(cid, int) and 0 <= domain.label_of(cid) < num_classes, source, where,
                 f"field 'category_id' is {cid!r}, expected {domain.category_id_of(0)}..{domain.category_id_of(num_classes - 1)}")
        labels[i] = domain.label_of(cid)
    missing = np.flatnonzero(labels < 0)
    if len(missing):
        i = int(missing[0])
        raise AnnotationError(f"{source}: images[{i}] ({names[i]}, id {int(ids[i])}): has no annotation "
                              f"({len(missing)} images without one)")


def parse_annotations(raw: bytes, source: str, domain: str | Domain, split: str) -> SplitAnnotations:
    """Check one annotation file's bytes and return its images, labels and class names.

    A file without annotations (the devkit's `*_test_stripped.json`) gives labels -1."""
    domain = get_domain(domain) if isinstance(domain, str) else domain
    try:
        return _parse(raw, source, domain, split)
    except RecursionError:  # json (and any walk of what it built) recurses once per nesting level
        raise AnnotationError(f"{source}: JSON nested too deeply to be an annotation file "
                              "(expected objects and lists a few levels deep)") from None


def _parse(raw: bytes, source: str, domain: Domain, split: str) -> SplitAnnotations:
    """pycocotools is imported here, not at module level, so that training code on a GPU
    image without it can still import the package."""
    from pycocotools.coco import COCO

    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{source}: not valid JSON ({err})") from None
    _require(isinstance(data, dict), source, "top level", "expected a JSON object")
    class_names = _check_categories(data.get("categories"), domain, source)
    ids, names, widths, heights = _check_images(data.get("images"), domain, split, source)
    annotations = data.get("annotations") or []
    _require(isinstance(annotations, list), source, "annotations", "expected a list")
    if annotations:
        _check_annotations(annotations, ids, names, domain, len(class_names), source)
        coco = COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # COCO prints progress lines
            coco.createIndex()
        labels = np.asarray([domain.label_of(coco.imgToAnns[int(i)][0]["category_id"]) for i in ids], np.int64)
    else:
        _require(split == "test", source, "annotations", f"empty, but the {split} split must be labelled")
        labels = np.full(len(ids), -1, np.int64)
    return SplitAnnotations(domain, split, source, ids, names, widths, heights, labels, class_names,
                            hashlib.sha256(raw).hexdigest())


def read_labelled_annotations(path: Path) -> dict:
    """All labelled `<domain>_<split>.json` files in a folder or zip (e.g. labels_test.zip).

    Returns {(domain, split): SplitAnnotations}; stripped files are skipped."""
    path = Path(path)
    found = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                key = _labelled_key(Path(member).name)
                if key:
                    found[key] = parse_annotations(archive.read(member), f"{path}!{member}", *key)
    elif path.is_dir():
        for file in sorted(path.rglob("*.json")):
            key = _labelled_key(file.name)
            if key:
                found[key] = parse_annotations(file.read_bytes(), str(file), *key)
    else:
        raise AnnotationError(f"{path}: expected a folder or a zip of <domain>_<split>.json files")
    if not found:
        raise AnnotationError(f"{path}: no labelled <domain>_<split>.json files found "
                              f"(domains: {', '.join(DOMAIN_NAMES)})")
    return found


def _labelled_key(name: str):
    match = _FILE_RE.match(name)
    if not match or match["stripped"] or match["domain"] not in DOMAIN_NAMES:
        return None
    return match["domain"], match["split"]
