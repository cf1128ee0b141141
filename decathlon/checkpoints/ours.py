"""Checkpoints written atomically, with enough metadata to refuse a wrong one clearly.

Two kinds: a `backbone` (the pretrained ResNet-26 every method starts from) and a `job`
checkpoint (everything needed to resume one training job exactly: weights, optimizer,
schedule, epoch and RNG states).

Every file of ours is read with `torch.load(weights_only=True)`, torch's allow-list
unpickler, so reading a checkpoint never runs code from it. `save_atomic` therefore
writes only what that reader accepts: tensors, numbers, strings, bools, None, bytes,
torch dtypes, devices and sizes, in lists, tuples, sets and dicts (plain, OrderedDict,
and collections.Counter, which torch accepts and MultiStepLR's milestones need kept as
such). Anything else stops the save with a TypeError naming where it sits, so an
unreadable checkpoint is never written; convert it to those types before saving.

`load_backbone` also takes the residual-adapter authors' `resnet26_pretrained.t7`,
converted on the fly (`public_format`), and says where a backbone came from.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from collections import Counter, OrderedDict
from pathlib import Path

import torch

from decathlon.checkpoints.errors import CheckpointError
from decathlon.checkpoints.foreign import TIMM_HUB, foreign_backbone, hub_backbone, read_weight_file
from decathlon.checkpoints.public import public_backbone_state
from decathlon.files import atomic_path, sha256_file

CHECKPOINT_FORMAT = 1
# Exact types: subclasses such as numpy.float64 (a float) pickle as other globals.
_PLAIN = (str, bytes, int, float, bool, type(None))
_TORCH_LEAVES = (torch.Tensor, torch.dtype, torch.device, torch.Size)


def _check_loadable(value, where: str) -> None:
    """Raise TypeError unless torch.load(weights_only=True) can read `value` back."""
    if type(value) in _PLAIN or isinstance(value, _TORCH_LEAVES):
        return
    if type(value) in (dict, OrderedDict, Counter):
        for key, item in value.items():
            _check_loadable(key, f"{where} key")
            _check_loadable(item, f"{where}[{key!r}]")
    elif type(value) in (list, tuple, set):
        for index, item in enumerate(value):
            _check_loadable(item, f"{where}[{index}]")
    else:
        raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which "
                        f"torch.load(weights_only=True) refuses: save tensors, numbers, strings, lists or dicts")


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over `path`;
    refuses (TypeError) what torch.load(weights_only=True) could not read back. A failed
    write (a full disk) leaves the previous file as it was and raises CheckpointError."""
    _check_loadable(obj, f"{Path(path).name}: value")
    try:
        # Through a Python file: a failed write is then an OSError with its errno (torch's own
        # file writer reports it as a RuntimeError "unexpected pos").
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            torch.save(obj, f)
    except OSError as err:
        raise CheckpointError(f"cannot write checkpoint {path}: {err.strerror or err}") from None


def load_checkpoint(path: Path, kind: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        needs = f"global {found.group(1)}" if found else "objects other than tensors and containers"
        raise CheckpointError(f"{path}: refused by torch.load(weights_only=True): it needs {needs} "
                              f"(not a checkpoint this suite wrote)") from None
    except Exception as err:  # torch raises several types for damaged files
        reason = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(err).__name__}: {reason})") from None
    return _checked(ckpt, path, kind)


def _checked(ckpt, path: Path, kind: str) -> dict:
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a decathlon checkpoint (field 'format' should be {CHECKPOINT_FORMAT})")
    if ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: field 'kind' is {ckpt.get('kind')!r}, expected {kind!r}")
    return ckpt


def arch_record(hparams: dict) -> dict:
    """What a backbone file records of its architecture, from a job's hyperparameters:
    {'name': 'resnet26', 'width'} (as every backbone.pt has since the first), or for a timm
    arch {'name': 'timm:<model>', 'input_size', 'patch_size', 'arch_kwargs'}."""
    arch = hparams.get("arch", "resnet26")
    if arch == "resnet26":
        return {"name": arch, "width": hparams["width"]}
    return {"name": arch, "input_size": hparams.get("input_size"), "patch_size": hparams.get("patch_size"),
            "arch_kwargs": dict(hparams.get("arch_kwargs") or {})}


def _as_record(arch: dict | float) -> dict:
    """An arch record; a bare number is ResNet-26 at that width (the importers' and the
    model files' backbones, which are ResNet-26 only)."""
    return arch if isinstance(arch, dict) else {"name": "resnet26", "width": arch}


def backbone_checkpoint(net: torch.nn.Module, arch: dict | float, **info) -> dict:
    """The backbone file's content: weights on the CPU, the arch record (`arch_record`, or
    the width of a ResNet-26), and `info` (an imported backbone has `source`, see
    `imported_source`)."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    return {"format": CHECKPOINT_FORMAT, "kind": "backbone", "arch": _as_record(arch), "state": state, **info}


def save_backbone(net: torch.nn.Module, arch: dict | float, path: Path, **info) -> None:
    save_atomic(backbone_checkpoint(net, arch, **info), path)


def imported_source(path: Path, recorded: dict, sha256: str | None = None) -> dict:
    """The record of a public file a backbone was imported from: {'kind': 'imported',
    'name', 'sha256'} and what the file recorded ('acc', 'epoch')."""
    return {"kind": "imported", "name": Path(path).name, "sha256": sha256 or sha256_file(path), **recorded}


def _starts_as_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def load_backbone(path, arch: dict | float, run_dir: Path | None = None) -> dict:
    """The backbone checkpoint (weights under 'state') after checking it is of the job's
    architecture `arch` (an `arch_record`, or the width of a ResNet-26): our backbone.pt;
    for ResNet-26 also the public resnet26_pretrained.t7 (width 1), converted on the fly
    with the same checks as `decathlon import-backbone`; for a timm arch also weights made
    elsewhere (`decathlon.checkpoints.foreign`: a safetensors file or a state dict, or
    'timm-hub' for timm's own pretrained weights), whose 'state' has no classifier.

    Its 'provenance' says which backbone it is, to be recorded with every result:
    {'kind', 'file', 'sha256'}, kind 'imported' (a public file, or a backbone.pt made from
    one: then also 'source', the public file's record), 'pretrained by this run' (a file
    under `run_dir`), 'ours' (pretrained by another run), 'external' (a weight file made
    elsewhere) or 'timm-hub'."""
    expected = _as_record(arch)
    timm = expected["name"] != "resnet26"
    if timm and str(path) == TIMM_HUB:
        return hub_backbone(expected)
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    sha256 = sha256_file(path)
    if timm:
        content = read_weight_file(path)   # ours, or weights made elsewhere
        if not (isinstance(content, dict) and "format" in content):
            return foreign_backbone(path, content, expected, sha256)
        ckpt = _checked(content, path, "backbone")
    elif zipfile.is_zipfile(path):
        ckpt = load_checkpoint(path, "backbone")
    elif _starts_as_zip(path):
        raise CheckpointError(f"{path}: a truncated or damaged file: it begins as a zip-format checkpoint "
                              f"(such as backbone.pt) but its end is missing or broken ({path.stat().st_size} "
                              "bytes); copy it again or pretrain it again")
    else:
        state, recorded = public_backbone_state(path)
        ckpt = {"format": CHECKPOINT_FORMAT, "kind": "backbone", "arch": {"name": "resnet26", "width": 1.0},
                "state": state, "source": imported_source(path, recorded, sha256)}
    found = ckpt.get("arch", {})
    if found != expected:
        what = (f"resnet26 at width {expected['width']}" if not timm
                else f"{expected['name']} with input_size {expected['input_size']}, patch_size "
                     f"{expected['patch_size']}, arch_kwargs {expected['arch_kwargs']}")
        raise CheckpointError(f"{path}: field 'arch' is {found}, expected {what}: the backbone is from another "
                              f"architecture (pretrain again or change --backbone-arch/--preset/width)")
    source = ckpt.get("source")
    provenance = {"kind": "ours", "file": str(path), "sha256": sha256}
    if isinstance(source, dict) and source.get("kind") == "imported":
        provenance["kind"] = "imported"
        if source.get("sha256") != sha256:
            provenance["source"] = source
    elif run_dir is not None and path.resolve().is_relative_to(Path(run_dir).resolve()):
        provenance["kind"] = "pretrained by this run"
    ckpt["provenance"] = provenance
    return ckpt


# Hyperparameters added after job checkpoints were first written, with the value every job
# had before: a checkpoint without one was written with that value.
ADDED_HPARAMS = {"tail": "eager", "arch": "resnet26", "input_size": None, "patch_size": None, "arch_kwargs": {}}


def check_resumable(ckpt: dict, path: Path, identity: dict) -> None:
    """A job checkpoint may only resume the job that wrote it."""
    written = dict(ckpt.get("identity", {}))
    if isinstance(written.get("hparams"), dict) and isinstance(identity.get("hparams"), dict):
        added = {k: v for k, v in ADDED_HPARAMS.items() if k in identity["hparams"]}
        written["hparams"] = {**added, **written["hparams"]}
    for key, value in identity.items():
        if written.get(key) != value:
            raise CheckpointError(f"{path}: written for {key}={written.get(key)!r}, "
                                  f"this job has {key}={value!r}; use another output folder")
