"""The registry of methods: one class each; a new method is one file and one line here."""
from decathlon.methods.base import Method, check_backbone
from decathlon.methods.plain import (BNAdapt, FeatureExtractor, Finetune, ParallelAdapters,
                                     Scratch, SeriesAdapters)
from decathlon.methods.piggyback import Piggyback
from decathlon.methods.spottune import RandomPolicy, SpotTune, SpotTuneGlobal
from decathlon.methods.spottune_joint import SpotTuneJoint
from decathlon.methods.nettailor import NetTailor
from decathlon.methods.taps import Taps
from decathlon.methods.peft import VPT, AdaptFormer, BitFit, LoRA
from decathlon.models import RESNET26

METHODS = {cls.name: cls for cls in (
    Scratch, FeatureExtractor, Finetune, BNAdapt, SeriesAdapters, ParallelAdapters,
    SpotTune, SpotTuneGlobal, RandomPolicy, SpotTuneJoint, Piggyback, Taps, NetTailor,
    BitFit, LoRA, VPT, AdaptFormer,
)}


# The ResNet-26 board: the published methods up to 2022 and the suite's ablations. What `decathlon
# run` trains by default on ResNet-26 (the default `make run`); `--methods all` adds the
# parameter-efficient methods defined there too (bitfit, lora).
BOARD_METHODS = ("scratch", "feature_extractor", "finetune", "bn_adapt", "series_adapters", "parallel_adapters",
                 "spottune", "spottune_global", "random_policy", "spottune_joint", "piggyback", "taps", "nettailor")


def defined_on(method_cls: type, arch: str) -> bool:
    """Whether the method is defined on the backbone `arch` (see `check_backbone`)."""
    try:
        check_backbone(method_cls, arch)
    except ValueError:
        return False
    return True


def methods_on(arch: str) -> tuple:
    """Every registered method defined on the backbone `arch`: what `--methods all` means."""
    return tuple(name for name, cls in METHODS.items() if defined_on(cls, arch))


def default_methods(arch: str) -> tuple:
    """What a run trains without --methods: the ResNet-26 board on ResNet-26, else every
    method defined on the backbone."""
    return BOARD_METHODS if arch == RESNET26 else methods_on(arch)


def get_method(name: str) -> type:
    """The method class registered under `name`, or an error naming the valid choices."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None


__all__ = ["BOARD_METHODS", "METHODS", "Method", "check_backbone", "default_methods", "defined_on", "get_method",
           "methods_on"]
