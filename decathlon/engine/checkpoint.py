"""Checkpoints written atomically, with enough metadata to refuse a wrong one clearly.

Two kinds: a `backbone` (the pretrained ResNet-26 every method starts from) and a `job`
checkpoint (everything needed to resume one training job exactly: weights, optimizer,
schedule, epoch and RNG states).
"""
from __future__ import annotations

from pathlib import Path

import torch

from decathlon.files import atomic_path

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or from another architecture or job."""


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over `path`."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path, kind: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for damaged files
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a decathlon checkpoint (field 'format' should be {CHECKPOINT_FORMAT})")
    if ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: field 'kind' is {ckpt.get('kind')!r}, expected {kind!r}")
    return ckpt


def save_backbone(net: torch.nn.Module, width: float, path: Path, **info) -> None:
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    save_atomic({"format": CHECKPOINT_FORMAT, "kind": "backbone",
                 "arch": {"name": "resnet26", "width": width}, "state": state, **info}, path)


def load_backbone(path: Path, width: float) -> dict:
    """The backbone's state dict, after checking it was trained at this width."""
    ckpt = load_checkpoint(path, "backbone")
    arch = ckpt.get("arch", {})
    if arch.get("name") != "resnet26" or arch.get("width") != width:
        raise CheckpointError(f"{path}: field 'arch' is {arch}, expected resnet26 at width {width}: "
                              f"the backbone is from another architecture (pretrain again or change --preset/width)")
    return ckpt


def check_resumable(ckpt: dict, path: Path, identity: dict) -> None:
    """A job checkpoint may only resume the job that wrote it."""
    for key, value in identity.items():
        if ckpt.get("identity", {}).get(key) != value:
            raise CheckpointError(f"{path}: written for {key}={ckpt.get('identity', {}).get(key)!r}, "
                                  f"this job has {key}={value!r}; use another output folder")
