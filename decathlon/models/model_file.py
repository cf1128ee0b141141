"""A multi-domain SpotTune model as one file: spottune_multidomain.pt.

What it is built from (backbone width and classes, policy kind and width, trunk BN,
temperature), the backbone and the shared policy trunk once, every domain's own state,
and `info` (what made it: the method, the augmentation and centre-crop rounding its domains
were trained with).
Tensors, numbers, strings, lists and dicts only, so it loads with
torch.load(weights_only=True) and nothing in it can run code. Functions of the model
class (`SpotTuneNet.checkpoint`, `.from_checkpoint`, `.load` call them).
"""
from __future__ import annotations

import torch

from decathlon.models.resnet import ResNet

MODEL_FILE_KIND = "spottune_multidomain"


def checkpoint(net, **info) -> dict:
    arch = {"width": net.backbone.width, "backbone_classes": net.backbone.classifier.out_features,
            "policy": net.policy_kind, "policy_width": net.policy_width, "trunk_bn": net.trunk_bn,
            "temperature": net.temperature}
    return {"format": 1, "kind": MODEL_FILE_KIND, "arch": arch, "info": dict(info),
            "shared": {k: v.detach().cpu() for k, v in net.shared_state_dict().items()},
            "domains": {name: net.domain_state_dict(name) for name in net.domains}}


def from_checkpoint(cls, content: dict, where: str):
    """The model `checkpoint` describes, in eval mode, its `info` as the attribute `info`."""
    if not isinstance(content, dict) or content.get("kind") != MODEL_FILE_KIND:
        found = content.get("kind") if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"{where}: field 'kind' is {found!r}, expected {MODEL_FILE_KIND!r}")
    arch = content["arch"]
    net = cls(ResNet((4, 4, 4), arch["backbone_classes"], arch["width"]), arch["policy"], arch["policy_width"],
              arch["temperature"], trunk_bn=arch["trunk_bn"] or "per_domain")
    net.load_shared_state_dict(content["shared"])
    for name, state in content["domains"].items():
        net.load_domain_state_dict(name, state)
    net.info = dict(content.get("info") or {})
    return net.eval()


def load(cls, path):
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged or foreign files
        reason = str(err).splitlines()[0] if str(err) else ""
        raise ValueError(f"{path}: cannot read a SpotTune model file ({type(err).__name__}: {reason})") from None
    return from_checkpoint(cls, content, str(path))
