"""Backbone weights made outside this suite, for a timm arch (`--backbone-weights FILE|timm-hub`).

A weight file is a safetensors file or a torch state dict (read with
torch.load(weights_only=True); a file that needs a full unpickler, such as a pickled
nn.Module, is refused), possibly wrapped as {'state_dict': ...} or {'model': ...}. Its keys
are the timm model's own (what `timm.create_model(name).state_dict()` has). They become our
TimmNet's `body.*` keys: the timm head is dropped (the model's pretrained_cfg names it),
timm's own checkpoint filter of the model's family adapts what depends on the input or
patch size (a ViT's position and patch embeddings are resampled, as timm does when it
loads pretrained weights into another size), and then every tensor must fit the job's arch
exactly; the first that does not is named, with its shape and what the arch expects.

'timm-hub' loads timm's own pretrained weights through its hub (network), and only
where the user passed it.
"""
from __future__ import annotations

import hashlib
import pickle
import re
import sys
from pathlib import Path

import safetensors.torch
import torch

from decathlon.checkpoints.errors import CheckpointError
from decathlon.models import timm_body

TIMM_HUB = "timm-hub"
WRAPPER_KEYS = ("state_dict", "model")


def is_safetensors(path: Path) -> bool:
    """A safetensors file: 8 bytes of header length (little-endian), then a JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < Path(path).stat().st_size


def read_weight_file(path: Path):
    """What the file holds: a safetensors file's tensors, or torch.load(weights_only=True)'s
    content (our own checkpoints are read this way too)."""
    if is_safetensors(path):
        try:
            return safetensors.torch.load_file(path)
        except Exception as err:   # safetensors raises its own error types for damaged files
            raise CheckpointError(f"{path}: cannot read the safetensors file ({_first_line(err)})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        needs = f"global {found.group(1)}" if found else "objects other than tensors and containers"
        raise CheckpointError(f"{path}: refused: it needs a full unpickler ({needs}), which could run code from "
                              "the file; save the weights as model.state_dict() with torch.save, or as safetensors") \
            from None
    except Exception as err:  # torch raises several types for files it cannot parse
        raise CheckpointError(f"{path}: cannot read weights ({type(err).__name__}: {_first_line(err)}); expected a "
                              "safetensors file or a torch state dict (model.state_dict())") from None


def foreign_backbone(path: Path, content, arch: dict, sha256: str) -> dict:
    """A backbone from a weight file's `content` (see `read_weight_file`) for the timm arch
    record `arch`: {'arch', 'state' (body.* keys, no classifier), 'provenance'}."""
    state = _state_dict_of(content, path)
    return {"arch": arch, "state": body_state(state, arch, str(path)),
            "provenance": {"kind": "external", "file": str(path), "sha256": sha256}}


def hub_backbone(arch: dict) -> dict:
    """timm's own pretrained weights of the arch (downloaded by timm, or from its cache);
    the sha256 is that of the weights as one safetensors blob."""
    try:
        body = timm_body(arch["name"], arch["input_size"], arch["patch_size"], arch["arch_kwargs"], pretrained=True)
    except ValueError:   # our own one-line errors (a keyword the model does not take) pass as they are
        raise
    except Exception as err:   # the hub's network and file errors come in many types
        raise CheckpointError(f"{TIMM_HUB}: timm could not load the pretrained weights of {arch['name']} "
                              f"({type(err).__name__}: {_first_line(err)})") from None
    state = {f"body.{key}": value.detach().cpu().contiguous() for key, value in body.state_dict().items()}
    cfg = getattr(body, "pretrained_cfg", {}) or {}
    tag = ".".join(part for part in (cfg.get("architecture"), cfg.get("tag")) if part)
    sha256 = hashlib.sha256(safetensors.torch.save(state)).hexdigest()
    return {"arch": arch, "state": state,
            "provenance": {"kind": TIMM_HUB, "file": TIMM_HUB, "sha256": sha256, "pretrained": tag}}


def body_state(state: dict, arch: dict, where: str) -> dict:
    """`state` (the timm model's keys) as TimmNet's `body.*` keys for `arch`, checked."""
    body = timm_body(arch["name"], arch["input_size"], arch["patch_size"], arch["arch_kwargs"])
    head = (getattr(body, "pretrained_cfg", {}) or {}).get("classifier")
    heads = (head,) if isinstance(head, str) else tuple(head or ())
    state = {k: v for k, v in state.items() if not any(k == h or k.startswith(f"{h}.") for h in heads)}
    # timm's filter for the model's family (vision_transformer.checkpoint_filter_fn, ...), as
    # its own pretrained loading applies it; families without one need none.
    filter_fn = getattr(sys.modules[type(body).__module__], "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(state, body)
        except (KeyError, RuntimeError, ValueError, AttributeError, IndexError) as err:
            raise CheckpointError(f"{where}: the weights are of another architecture than {arch['name']} "
                                  f"(timm's checkpoint filter: {type(err).__name__}: {_first_line(err)})") from None
    own = body.state_dict()
    for key, value in state.items():
        if key not in own or own[key].shape != value.shape:
            want = f"expects {tuple(own[key].shape)}" if key in own else "has no such tensor"
            raise CheckpointError(f"{where}: the weights are of another architecture: tensor {key!r} has shape "
                                  f"{tuple(value.shape)}, {arch['name']} {want}")
    missing = [key for key in own if key not in state]
    if missing:
        raise CheckpointError(f"{where}: the weights are of another architecture: {arch['name']}'s tensor "
                              f"{missing[0]!r} {tuple(own[missing[0]].shape)} is missing "
                              f"({len(missing)} missing in all)")
    return {f"body.{key}": value for key, value in state.items()}


def _state_dict_of(content, path: Path) -> dict:
    """The tensors of a state dict, unwrapped from {'state_dict': ...} or {'model': ...}."""
    for key in WRAPPER_KEYS:
        if isinstance(content, dict) and isinstance(content.get(key), dict):
            content = content[key]
            break
    if not isinstance(content, dict) or not content:
        raise CheckpointError(f"{path}: holds a {type(content).__name__}, not a state dict; expected "
                              "model.state_dict() or a safetensors file")
    for key, value in content.items():
        if not torch.is_tensor(value):
            raise CheckpointError(f"{path}: not a state dict: {key!r} holds a {type(value).__name__}, expected a "
                                  "tensor (save model.state_dict() or a safetensors file)")
    return content


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else ""
