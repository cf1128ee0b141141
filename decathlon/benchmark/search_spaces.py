"""Where a sweep searches: per method, the ranges of the hyperparameters it tunes, and the
two samplers that draw trials from them (DomainBed's hparams_registry random draws).

Every range is log-uniform between its bounds (learning rates, weight decay, loss weights
span orders of magnitude) and lists the points the `grid` sampler takes. An integer range
(SpotTune-Global's `budget_blocks`) draws uniformly among its integers.

- `random`: trial t of (method, domain) is drawn from a generator seeded by (sweep seed,
  method, domain, t) alone, so a draw never depends on the order of the methods or domains
  or on which others the sweep has. Floats are rounded to 3 significant digits, which
  keeps the trial folders' names readable.
- `grid`: the product of the ranges' grid points (keys in name order), the first N.

A draw is a set of hyperparameter overrides; `draw_trials` checks each through
`hparams(...)` like any --hparam. Keys the user fixes with --hparam are not searched.
Methods without a space here (spottune_joint: one job over all domains, so no per-domain
choice; nettailor: each trial would need its own finetune teacher) cannot be swept.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass

import numpy as np

from decathlon.benchmark.hparams_registry import hparams

SAMPLERS = ("random", "grid")
SIGNIFICANT_DIGITS = 3


@dataclass(frozen=True)
class Range:
    """Log-uniform in [low, high] (uniform among the integers for an int range); `grid`:
    the points the grid sampler takes, in order."""
    low: float
    high: float
    grid: tuple
    integer: bool = False

    def draw(self, rng: np.random.Generator):
        if self.integer:
            return int(rng.integers(int(self.low), int(self.high) + 1))
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


_LR = Range(1e-3, 1e-1, (0.1, 0.03, 0.01, 0.003))
_WEIGHT_DECAY = Range(1e-5, 1e-3, (5e-4, 1e-4, 1e-5))
_SGD = {"lr": _LR, "weight_decay": _WEIGHT_DECAY}
_POLICY = {**_SGD, "policy_lr": Range(1e-3, 1e-1, (0.01, 0.1, 0.001))}
SEARCH_SPACES = {
    "scratch": _SGD,
    "finetune": _SGD,
    "feature_extractor": _SGD,
    "bn_adapt": _SGD,
    "series_adapters": _SGD,
    "parallel_adapters": _SGD,
    "spottune": _POLICY,
    "spottune_global": {**_POLICY, "budget_blocks": Range(2, 10, (6, 3, 9), integer=True)},
    "random_policy": _SGD,   # its policy is not learned: policy_lr means nothing to it
    # Adam on the classifier and on the mask scores; no weight decay in the recipe.
    "piggyback": {"lr": Range(1e-4, 1e-2, (1e-3, 1e-4, 1e-2)), "mask_lr": Range(1e-4, 1e-2, (1e-3, 1e-4, 1e-2))},
    "taps": {**_SGD, "sparsity_weight": Range(0.1, 10.0, (1.0, 0.3, 3.0))},
    # The parameter-efficient methods: their learning rate and decay (sizes such as lora_rank
    # change #par, which a selection on val accuracy alone would only ever grow).
    **{name: _SGD for name in ("bitfit", "lora", "vpt", "adaptformer")},
}


def search_space(method: str, fixed: dict | None = None) -> dict:
    """{hyperparameter: Range} a sweep of `method` searches: its space less the keys fixed
    by the user's overrides; refused for a method without a space, or with nothing left."""
    if method not in SEARCH_SPACES:
        raise KeyError(f"method {method!r} cannot be swept (no search space: a multi-domain job or one that "
                       f"distils from a teacher); methods with one: {', '.join(SEARCH_SPACES)}")
    space = {key: value for key, value in sorted(SEARCH_SPACES[method].items()) if key not in (fixed or {})}
    if not space:
        raise ValueError(f"method {method!r}: --hparam fixes every key it searches "
                         f"({', '.join(sorted(SEARCH_SPACES[method]))}); nothing is left to sweep")
    return space


def _rng(sweep_seed: int, method: str, domain: str, trial: int) -> np.random.Generator:
    """A generator of its own per (sweep seed, method, domain, trial)."""
    key = json.dumps([sweep_seed, method, domain, trial]).encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))


def draw_trials(method: str, domain: str, trials: int, sampler: str = "random", sweep_seed: int = 0,
                preset: str = "cpu_demo", fixed: dict | None = None) -> list:
    """The `trials` settings (override dicts) of (method, domain), each checked by hparams()."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    if trials < 1:
        raise ValueError(f"trials is {trials}; expected at least 1")
    space = search_space(method, fixed)
    if sampler == "random":
        draws = [{key: rng_range.draw(rng) for key, rng_range in space.items()}
                 for rng in (_rng(sweep_seed, method, domain, t) for t in range(trials))]
    else:
        grid = list(itertools.product(*(space[key].grid for key in space)))
        if trials > len(grid):
            raise ValueError(f"method {method!r}: the grid has {len(grid)} point(s) "
                             f"({' x '.join(f'{len(r.grid)} {k}' for k, r in space.items())}); "
                             f"--trials {trials} asks for more")
        draws = [dict(zip(space, point)) for point in grid[:trials]]
    for draw in draws:
        hparams(method, domain, preset, {**(fixed or {}), **draw})
    return draws


def settings_slug(settings: dict) -> str:
    """A trial folder's name: 'lr=0.0123_weight_decay=0.00045' (keys in name order)."""
    return "_".join(f"{key}={value:.{SIGNIFICANT_DIGITS}g}" if isinstance(value, float) else f"{key}={value}"
                    for key, value in sorted(settings.items()))
