"""One registry of hyperparameters: presets, then per-method, then per-domain defaults.

`hparams(method, domain, preset)` layers, in order: the preset's common block, the
method's block, what the method sets under that preset (`_PRESET_METHOD`), the preset's
per-domain block, and the caller's overrides. Every value a
run used is written into its record, so a table can always say how a number was made.

Presets (each also carries its protocol, see `preset_protocol`):
- `cpu_demo`: the embedded synthetic mini-decathlon on a laptop CPU (width 0.25).
- `spottune_paper`: the public SpotTune code AS IT RAN (docs/reference.md, section 3): train+val,
  110 epochs, the LR decayed once, at epoch 40 (its if/if/else chain overwrites the other
  steps), per-domain weight decay, test-time decisions sampled (Gumbel), fp32.
- `spottune_intended`: the same with the 40/60/80 steps its author may have meant.
- `adapters_paper`: the residual-adapter code's settings (lr 0.1, 120 epochs, x0.1 at 80 and
  x0.01 at 100, batch 128, train only), its per-group weight decay (3x3 convs 5e-4, 1x1
  convs 1e-4, the rest 5e-4, the values of its README's example), fp32.
- `piggyback_paper`: the public Piggyback code's schedule (30 epochs, x0.1 at 15, batch 32;
  finetune as its baseline script, piggyback with its Adam rates): presets_piggyback.py.
- `nettailor_paper`: NetTailor's public demo recipe, its teacher (finetune) included
  (decathlon/benchmark/presets_nettailor.py, docs/reference.md, section 5.3).
- `taps_paper`: the public TAPS code's recipe (decathlon/benchmark/presets_taps.py).
Pretraining on imagenet12 has its own block per preset: for the paper presets the random
64 crop + flip, centre 64 at test, of the code that made the public resnet26_pretrained.t7
(the `adapters` augmentation); its schedule is our choice (the papers do not state it).

Named options every preset has, recorded in every result: `precision` ('fp32', TF32 allowed
on CUDA; or 'bf16' autocast), `eval_policy` (SpotTune's reported test-time decisions; every
SpotTune job also evaluates the other policy), `sample_draws` / `sample_seed` (the sampled
evaluation: draws averaged, from a fixed seed), `weight_decay_3x3` / `weight_decay_1x1`
(None: the same as `weight_decay`), `crop_rounding` (how a centre crop's offset rounds a
half: 'half_away' as Python 2, under which the public codes ran, in the paper presets;
'half_even' as Python 3 in cpu_demo) and `drop_last` (skip each epoch's last, shorter
training batch: off in the paper presets, whose loaders keep it; on in cpu_demo). SpotTune's
methods also have `tail`: its fused blocks' tail in training, 'eager' or 'compiled'
(torch.compile; decathlon/models/compiled_tail.py). The backbone is one more named option of
every preset and of pretraining: `arch` ('resnet26', or 'timm:<name>' for any timm model),
`input_size`, `patch_size` and `arch_kwargs` (decathlon/models/backbones.py).
"""
from __future__ import annotations

import copy
import json

from decathlon.benchmark.presets_nettailor import NETTAILOR, nettailor_paper
from decathlon.benchmark.presets_peft import PEFT_METHODS
from decathlon.benchmark.presets_piggyback import PIGGYBACK_BY_PRESET, PIGGYBACK_METHOD, PIGGYBACK_PAPER
from decathlon.benchmark.presets_taps import TAPS_IN_PRESET, TAPS_METHOD, taps_paper_common
from decathlon.data import CROP_ROUNDINGS, get_domain
from decathlon.engine import LR_SCHEDULES, PRECISIONS
from decathlon.models import TAILS, check_backbone_settings

_PROTOCOL = {"cpu_demo": "train", "spottune_paper": "trainval", "spottune_intended": "trainval",
             "adapters_paper": "train", "piggyback_paper": "train", "taps_paper": "train"}

# The backbone (decathlon.models.backbones): 'resnet26' or 'timm:<name>', its input size (None:
# the loaders' images as they are, else resized to NxN), a ViT's patch size (None: the arch's own)
# and further timm.create_model keywords (e.g. a smaller depth).
_BACKBONE = dict(arch="resnet26", input_size=None, patch_size=None, arch_kwargs={})
_OPTIONS = dict(precision="fp32", weight_decay_3x3=None, weight_decay_1x1=None, **_BACKBONE)
# The demo's committed results were made with Python 3 rounding and full batches only.
_DEMO_OPTIONS = dict(_OPTIONS, crop_rounding="half_even", drop_last=True)
_PAPER_OPTIONS = dict(_OPTIONS, crop_rounding="half_away", drop_last=False)
_SPOTTUNE_PAPER = dict(_PAPER_OPTIONS, width=1.0, batch_size=128, epochs=110, lr=0.1, momentum=0.9, lr_milestones=[40],
                       lr_gamma=0.1, weight_decay=0.0, augmentation="spottune", eval_batch_size=512)
_COMMON = {
    "cpu_demo": dict(_DEMO_OPTIONS, width=0.25, batch_size=64, epochs=3, lr=0.05, momentum=0.9,
                     lr_milestones=[2], lr_gamma=0.1, weight_decay=5e-4, augmentation="spottune",
                     eval_batch_size=256),
    "spottune_paper": _SPOTTUNE_PAPER,
    "spottune_intended": dict(_SPOTTUNE_PAPER, lr_milestones=[40, 60, 80]),
    "adapters_paper": dict(_PAPER_OPTIONS, width=1.0, batch_size=128, epochs=120, lr=0.1, momentum=0.9,
                           lr_milestones=[80, 100], lr_gamma=0.1, weight_decay=5e-4, weight_decay_3x3=5e-4,
                           weight_decay_1x1=1e-4, augmentation="adapters", eval_batch_size=512),
    "piggyback_paper": dict(_PAPER_OPTIONS, **PIGGYBACK_PAPER),
    "taps_paper": taps_paper_common(_PAPER_OPTIONS),
}

# The public SpotTune code's per-domain weight decay; every other domain uses 0.
_SPOTTUNE_WEIGHT_DECAY = {"aircraft": 5e-4, "daimlerpedcls": 5e-4, "omniglot": 5e-4,
                          "ucf101": 5e-4, "vgg-flowers": 1e-4}
_PER_DOMAIN = {
    "cpu_demo": {},
    "spottune_paper": {d: {"weight_decay": wd} for d, wd in _SPOTTUNE_WEIGHT_DECAY.items()},
    "spottune_intended": {d: {"weight_decay": wd} for d, wd in _SPOTTUNE_WEIGHT_DECAY.items()},
    "adapters_paper": {},
    "piggyback_paper": {},
    "taps_paper": {},
}
# The public SpotTune code samples its test-time decisions; the other presets report argmax.
_EVAL_POLICY = {"cpu_demo": "argmax", "spottune_paper": "sample", "spottune_intended": "sample",
                "adapters_paper": "argmax", "piggyback_paper": "argmax", "taps_paper": "argmax"}

_SPOTTUNE_COMMON = dict(policy_lr=0.01, policy_weight_decay=1e-3, temperature=5.0,
                        policy="per_domain", trunk_bn="per_domain", eval_policy=None, sample_draws=1, sample_seed=0,
                        tail="eager")
_METHOD = {
    "scratch": {},
    "finetune": {},
    "feature_extractor": {},
    "bn_adapt": {},
    "series_adapters": {},
    "parallel_adapters": {},
    "spottune": dict(_SPOTTUNE_COMMON),
    # Budget of fine-tuned blocks and loss weights: our choice, the paper's exact
    # values are a recollection (docs/reference.md, section 3.3).
    "spottune_global": dict(_SPOTTUNE_COMMON, policy="global", budget_blocks=6,
                            budget_weight=1.0, entropy_weight=0.1),
    # The random ablation needs no policy network: the tiny global table stands unused.
    "random_policy": dict(_SPOTTUNE_COMMON, policy="global", eval_policy="random"),
    # One model over all the run's domains: a policy trunk shared by every domain (its BN
    # layers per domain, see docs/joint.md), each training step one domain's batch.
    "spottune_joint": dict(_SPOTTUNE_COMMON, policy="shared_trunk", joint_domains_per_step=1),
    "piggyback": PIGGYBACK_METHOD,
    "taps": dict(TAPS_METHOD),
    "nettailor": dict(NETTAILOR),
    **PEFT_METHODS,   # bitfit, lora, vpt, adaptformer (presets_peft.py)
}
# What a method sets under one preset, over its own block (a recipe that needs other values there).
_PRESET_METHOD = {("cpu_demo", "piggyback"): PIGGYBACK_BY_PRESET["cpu_demo"],
                  **{(preset, "taps"): values for preset, values in TAPS_IN_PRESET.items()}}
# What may differ between the domains of one multi-domain job (the optimizer's per-group values).
PER_DOMAIN_KEYS = ("lr", "weight_decay", "weight_decay_3x3", "weight_decay_1x1")

_PAPER_PRETRAIN = dict(_PAPER_OPTIONS, width=1.0, batch_size=256, epochs=60, lr=0.1, momentum=0.9,
                       lr_milestones=[30, 45], lr_gamma=0.1, weight_decay=5e-4, augmentation="adapters",
                       eval_batch_size=512)
_PRETRAIN = {
    "cpu_demo": dict(_DEMO_OPTIONS, width=0.25, batch_size=64, epochs=8, lr=0.1, momentum=0.9, lr_milestones=[6],
                     lr_gamma=0.1, weight_decay=5e-4, augmentation="spottune", eval_batch_size=256),
    "spottune_paper": _PAPER_PRETRAIN, "spottune_intended": _PAPER_PRETRAIN, "adapters_paper": _PAPER_PRETRAIN,
    "piggyback_paper": _PAPER_PRETRAIN,
    "taps_paper": _PAPER_PRETRAIN,
}


def _add_preset(name: str, tables: dict) -> None:
    """Register a preset kept in its own module (presets_<method>.py)."""
    _PROTOCOL[name], _COMMON[name], _PER_DOMAIN[name] = tables["protocol"], tables["common"], {}
    _EVAL_POLICY[name], _PRETRAIN[name] = tables["eval_policy"], tables["pretrain"]
    _PRESET_METHOD.update({(name, method): values for method, values in tables["methods"].items()})


_add_preset("nettailor_paper", nettailor_paper(_PAPER_OPTIONS, _PAPER_PRETRAIN))
PRESETS = tuple(_COMMON)   # every preset has its common block, those of presets_<method>.py included


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")


# Keys that may be null (weight decays: the same as `weight_decay`; input and patch size: see
# _BACKBONE), and the type they have otherwise.
_NULLABLE = {"weight_decay_3x3": "float", "weight_decay_1x1": "float", "input_size": "int", "patch_size": "int"}


def _type_of(value) -> str:
    """The type name of a default value: what an override of its key must have."""
    if isinstance(value, list):
        return f"list of {_type_of(value[0])}" if value else "list"
    return {bool: "bool", int: "int", float: "float", dict: "dict"}.get(type(value), type(value).__name__)


def _fits(value, expected: str) -> bool:
    """Whether `value` (parsed JSON) has the type `expected`: an int is no bool, a float may be
    written as an int, a list's items have the item type."""
    if expected.startswith("list"):
        item = expected.removeprefix("list of ") if expected != "list" else None
        return isinstance(value, list) and (item is None or all(_fits(v, item) for v in value))
    if expected == "float":
        return type(value) in (int, float)
    return _type_of(value) == expected


def _apply(base: dict, overrides: dict | None, what: str) -> dict:
    """`base` with `overrides` applied; each override must name a known key and have the
    type of its default (so `epochs=1.5` is refused before any job starts)."""
    for key, value in (overrides or {}).items():
        if key not in base:
            raise KeyError(f"unknown hyperparameter {key!r} for {what}; known: {', '.join(sorted(base))}")
        expected = _NULLABLE.get(key) or _type_of(base[key])
        if not (_fits(value, expected) or (value is None and key in _NULLABLE)):
            nullable = " or null" if key in _NULLABLE else ""
            raise ValueError(f"hyperparameter {key!r} is {json.dumps(value)}; expected {_article(expected)}"
                             f"{nullable} (its default is {json.dumps(base[key])})")
        base[key] = value
    return base


def _article(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def hparams(method: str, domain: str, preset: str = "cpu_demo", overrides: dict | None = None) -> dict:
    """The hyperparameters of one (method, domain) job under a preset."""
    _check_preset(preset)
    get_domain(domain)
    if method not in _METHOD:
        raise KeyError(f"unknown method {method!r}; valid methods: {', '.join(_METHOD)}")
    values = copy.deepcopy(_COMMON[preset])
    values.update(copy.deepcopy(_METHOD[method]))
    values.update(copy.deepcopy(_PRESET_METHOD.get((preset, method), {})))
    if values.get("eval_policy", "") is None:
        values["eval_policy"] = _EVAL_POLICY[preset]
    values.update(_PER_DOMAIN[preset].get(domain, {}))
    return _check_values(_apply(values, overrides, f"{method} on {domain}"))


def joint_hparams(method: str, domains, preset: str = "cpu_demo", overrides: dict | None = None) -> dict:
    """The hyperparameters of one multi-domain job: those of its first domain, and under
    'per_domain' what each domain sets otherwise (only PER_DOMAIN_KEYS may differ)."""
    domains = tuple(domains)
    if not domains:
        raise ValueError(f"a {method} job needs at least one domain")
    each = {domain: hparams(method, domain, preset, overrides) for domain in domains}
    common = dict(each[domains[0]])
    per_domain = {}
    for domain, values in each.items():
        differs = {key: value for key, value in values.items() if value != common[key]}
        fixed = sorted(set(differs) - set(PER_DOMAIN_KEYS))
        if fixed:
            raise ValueError(f"{method}: hyperparameter(s) {', '.join(fixed)} of {domain} differ from "
                             f"{domains[0]}'s; one joint job needs them equal (only {', '.join(PER_DOMAIN_KEYS)} "
                             "may differ per domain)")
        per_domain[domain] = differs
    return {**common, "per_domain": per_domain}


def preset_protocol(preset: str) -> str:
    """The protocol a preset reproduces: 'trainval' for the public SpotTune code, else 'train'."""
    _check_preset(preset)
    return _PROTOCOL[preset]


def _check_values(values: dict) -> dict:
    if values["precision"] not in PRECISIONS:
        raise ValueError(f"hyperparameter 'precision' is {values['precision']!r}; expected one of "
                         f"{', '.join(PRECISIONS)}")
    if values.get("lr_schedule", "step") not in LR_SCHEDULES:
        raise ValueError(f"hyperparameter 'lr_schedule' is {values['lr_schedule']!r}; expected one of "
                         f"{', '.join(LR_SCHEDULES)}")
    if values.get("tail", "eager") not in TAILS:
        raise ValueError(f"hyperparameter 'tail' is {values['tail']!r}; expected one of {', '.join(TAILS)}")
    check_backbone_settings(values["arch"], values["input_size"], values["patch_size"], values["arch_kwargs"])
    if values["crop_rounding"] not in CROP_ROUNDINGS:
        raise ValueError(f"hyperparameter 'crop_rounding' is {values['crop_rounding']!r}; expected one of "
                         f"{', '.join(CROP_ROUNDINGS)}")
    return values


def pretrain_hparams(preset: str = "cpu_demo", overrides: dict | None = None) -> dict:
    """The hyperparameters of pretraining the backbone on imagenet12."""
    _check_preset(preset)
    return _check_values(_apply(copy.deepcopy(_PRETRAIN[preset]), overrides, "pretraining"))


def parse_overrides(pairs: list | None) -> dict:
    """['lr=0.01', 'lr_milestones=[2,3]'] -> {'lr': 0.01, 'lr_milestones': [2, 3]} (JSON values)."""
    result = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--hparam {pair!r}: expected KEY=VALUE")
        try:
            result[key] = json.loads(raw)
        except json.JSONDecodeError:
            result[key] = raw
    return result
