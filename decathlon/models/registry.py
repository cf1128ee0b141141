"""Named network constructors (timm style): ``create_model("resnet26_parallel", 100)``."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from decathlon.models.resnet import resnet26

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    MODELS[constructor.__name__] = constructor
    return constructor


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](num_classes, **kwargs)


@register_model
def resnet26_plain(num_classes: int, width: float = 1.0) -> nn.Module:
    return resnet26(num_classes, width)


@register_model
def resnet26_series(num_classes: int, width: float = 1.0) -> nn.Module:
    return resnet26(num_classes, width, adapter="series")


@register_model
def resnet26_parallel(num_classes: int, width: float = 1.0) -> nn.Module:
    return resnet26(num_classes, width, adapter="parallel")
