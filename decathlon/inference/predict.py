"""Predictions of one SpotTune model file for every domain it holds, from prepared shards.

`SpotTuneNet.load(path)` gives the whole model (backbone, shared trunk, every domain);
each domain's split is read with the augmentation and centre-crop rounding the model was
trained with (the model file's `info`), in batches, routed where routing pays. imagenet12 is
predicted by the frozen backbone itself when its classifier fits the prepared imagenet12 (the
published SpotTune row's ImNet is the backbone's too). A sampled test-time policy draws
from the torch RNG seeded per domain, so the predictions are reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from decathlon.data import MANIFEST_NAME, SOURCE_DOMAIN, ShardLoader, read_manifest, split_entry
from decathlon.models import SpotTuneNet


def load_model(path) -> SpotTuneNet:
    """The model file at `path`; ValueError naming it when its content does not build a
    model (a key, shape or type that the file's own `arch` does not fit: torch and the
    model raise KeyError, RuntimeError or TypeError for those)."""
    try:
        return SpotTuneNet.load(path)
    except (KeyError, RuntimeError, TypeError, AttributeError) as err:
        reason = " ".join(str(err.args[0] if isinstance(err, KeyError) and err.args else err).split())[:300]
        raise ValueError(f"{path}: not a complete SpotTune model file ({type(err).__name__}: {reason})") from None


def _check_classes(model: SpotTuneNet, manifest: dict, data) -> None:
    """Each domain's classifier must have the prepared domain's number of classes (else its
    predictions would be categories of another label set)."""
    for domain, branch in model.domains.items():
        prepared = manifest["domains"][domain]["num_classes"]
        if branch.num_classes != prepared:
            raise ValueError(f"domain {domain!r}: the model predicts {branch.num_classes} classes, "
                             f"{Path(data) / MANIFEST_NAME} has {prepared}")


@dataclass
class DomainPredictions:
    image_ids: np.ndarray
    labels: np.ndarray          # predicted 0-based labels
    known: np.ndarray           # the true labels, -1 where the split has none

    @property
    def accuracy(self) -> float | None:
        mask = self.known >= 0
        return float((self.labels[mask] == self.known[mask]).mean()) if mask.any() else None


def _predict(forward, loader, description: str, progress: bool) -> DomainPredictions:
    ids, labels, known = [], [], []
    with torch.no_grad():
        for images, truth, image_ids in tqdm(loader, desc=description, leave=False, disable=not progress):
            labels.append(forward(images).argmax(1).cpu().numpy())
            known.append(truth.cpu().numpy())
            ids.append(np.asarray(image_ids))
    order = np.argsort(np.concatenate(ids))
    return DomainPredictions(*(np.concatenate(part)[order] for part in (ids, labels, known)))


def predict_model(model: SpotTuneNet, data, split: str = "test", policy: str = "argmax", seed: int = 0,
                  device: str | torch.device = "cpu", batch_size: int = 256, progress: bool = True,
                  with_backbone: bool = True) -> dict:
    """{domain: DomainPredictions} for every domain of `model` (and imagenet12 by the
    backbone, see the module docstring), on `split` of the shards in `data`."""
    manifest, device = read_manifest(data), torch.device(device)
    for domain in model.domains:
        split_entry(manifest, data, domain, split)
    _check_classes(model, manifest, data)
    model = model.to(device).eval()
    protocol = model.info.get("augmentation", "spottune")
    loader_args = dict(train=False, protocol=protocol, shuffle=False, seed=seed, drop_last=False, device=device,
                       channels_last=device.type == "cuda",
                       crop_rounding=model.info.get("crop_rounding", "half_even"))
    results = {}
    backbone_fits = (SOURCE_DOMAIN in manifest["domains"] and split in manifest["domains"][SOURCE_DOMAIN]["splits"]
                     and manifest["domains"][SOURCE_DOMAIN]["num_classes"] == model.backbone.classifier.out_features)
    if with_backbone and backbone_fits:
        loader = ShardLoader(data, SOURCE_DOMAIN, split, batch_size, **loader_args)
        results[SOURCE_DOMAIN] = _predict(model.backbone, loader, f"{SOURCE_DOMAIN} (backbone)", progress)
    for domain in model.domains:
        loader = ShardLoader(data, domain, split, batch_size, **loader_args)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            results[domain] = _predict(lambda x, d=domain: model(x, d, policy)[0], loader, domain, progress)
    return results
