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

METHODS = {cls.name: cls for cls in (
    Scratch, FeatureExtractor, Finetune, BNAdapt, SeriesAdapters, ParallelAdapters,
    SpotTune, SpotTuneGlobal, RandomPolicy, SpotTuneJoint, Piggyback, Taps, NetTailor,
    BitFit, LoRA, VPT, AdaptFormer,
)}


def get_method(name: str) -> type:
    """The method class registered under `name`, or an error naming the valid choices."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None


__all__ = ["METHODS", "Method", "check_backbone", "get_method"]
