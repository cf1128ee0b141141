"""The prepared-data manifest: the one file that describes a folder of HDF5 shards.

Schema (format_version 1), documented for readers that do not use this code:

    {
      "format_version": 1,
      "synthetic": false,                 # true for the embedded mini-decathlon
      "source": "<what was prepared>",
      "domains": {
        "<domain>": {
          "index": d, "num_classes": C, "class_names": [...],   # label i <-> class_names[i]
          "image_hw": [H, W], "storage": "<how images were brought to H x W>",
          "mean": [r, g, b], "std": [r, g, b],
          "splits": {
            "<split>": {
              "num_images": N, "labels_known": bool,
              "annotation_file": "<name>", "annotation_sha256": "<hex>",
              "shards": [{"file": "<domain>/<split>-00000.h5", "num_images": n, "sha256": "<hex>"}, ...]
            }
          }
        }
      }
    }

A split appears only once all its shards are written and verified; a shard file
appears only once complete (temporary name, then rename).
"""
from __future__ import annotations

import json
from pathlib import Path

from decathlon.files import write_bytes_atomic

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


class ManifestError(ValueError):
    """A manifest that is missing, unreadable or not what this code expects."""


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to a temporary file in the same folder, then rename over `path`."""
    write_bytes_atomic(path, json.dumps(obj, indent=1))


def read_manifest(root: Path) -> dict:
    """Load `<root>/manifest.json` and check its format version."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest here; prepare data first (make prepare-data)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}: not valid JSON ({err})") from None
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ManifestError(f"{path}: field 'format_version' is {version!r}, expected {FORMAT_VERSION}")
    if not isinstance(manifest.get("domains"), dict):
        raise ManifestError(f"{path}: field 'domains' missing or not an object")
    return manifest


def split_entry(manifest: dict, root: Path, domain: str, split: str) -> dict:
    """The manifest entry of one prepared split, with a clear error when it is absent."""
    domains = manifest["domains"]
    if domain not in domains:
        raise ManifestError(f"{Path(root) / MANIFEST_NAME}: domain {domain!r} was not prepared "
                            f"(prepared: {', '.join(domains) or 'none'})")
    splits = domains[domain]["splits"]
    if split not in splits:
        raise ManifestError(f"{Path(root) / MANIFEST_NAME}: split {split!r} of {domain!r} was not prepared "
                            f"(prepared: {', '.join(splits) or 'none'})")
    return splits[split]
