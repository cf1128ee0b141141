"""The Decathlon score S, as the Visual Decathlon defines it (Rebuffi et al., 2017).

S = sum_d alpha_d * max(0, Emax_d - E_d)**2 with Emax_d = 2 * baseline error and
alpha_d = 1000 / Emax_d**2, computed here in the equal form 1000 * max(0, 1 - E_d/Emax_d)**2
so that the exact cases come out exact: zero error earns 1000, the baseline's own error
250, twice the baseline error or more 0.

Accuracies and errors are fractions in [0, 1]. Domains without an accuracy are reported
in `SScore.missing`, never scored as zero: the total sums only the domains given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

from baselines import BASELINE_METHOD, published_accuracies
from decathlon.files import parse_json
from decathlon.data import DOMAIN_NAMES, DOMAINS, PAPER_ORDER

MAX_POINTS_PER_DOMAIN = 1000.0
PUBLISHED_BASELINE = "published Finetune (test)"
CUSTOM_BASELINE = "custom"


@dataclass(frozen=True)
class SScore:
    total: float            # sum of per_domain
    per_domain: dict        # domain -> points in [0, 1000], paper order
    missing: tuple          # baseline domains that had no accuracy (not counted)
    baseline: str           # PUBLISHED_BASELINE or CUSTOM_BASELINE

    @property
    def max_total(self) -> float:
        return MAX_POINTS_PER_DOMAIN * len(self.per_domain)

    def __str__(self) -> str:
        lines = [f"S = {self.total:.1f} / {self.max_total:.0f} (baseline: {self.baseline})"]
        lines += [f"  {DOMAINS[d].short:<6} {points:7.1f}" for d, points in self.per_domain.items()]
        if self.missing:
            lines.append(f"  missing (not scored): {', '.join(self.missing)}")
        return "\n".join(lines)


def domain_points(error: float, baseline_error: float) -> float:
    """Points of one domain: 1000 * max(0, 1 - error / (2 * baseline_error))**2.

    A baseline error of 0 leaves no room below the baseline, so the domain is worth
    1000 at zero error and 0 otherwise (the limit of the formula as the baseline error
    goes to 0)."""
    max_error = 2.0 * baseline_error
    if max_error == 0.0:
        return MAX_POINTS_PER_DOMAIN if error == 0.0 else 0.0
    return MAX_POINTS_PER_DOMAIN * max(0.0, 1.0 - error / max_error) ** 2


def _check_fractions(values, what: str) -> dict:
    """{domain: fraction} checked for known domain names and values in [0, 1]."""
    unknown = [name for name in values if name not in DOMAIN_NAMES]
    if unknown:
        raise ValueError(f"{what}: unknown domain(s) {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(DOMAIN_NAMES)}")
    bad = {name: v for name, v in values.items()
           if isinstance(v, bool) or not isinstance(v, Real) or not 0.0 <= v <= 1.0}
    if bad:
        listed = ", ".join(f"{name}={v!r}" for name, v in bad.items())
        looks_like_percent = all(isinstance(v, Real) and 1.0 < v <= 100.0 for v in bad.values())
        hint = " (these look like percentages: divide by 100)" if looks_like_percent else ""
        raise ValueError(f"{what}: expected fractions in [0, 1], got {listed}{hint}")
    return {name: float(v) for name, v in values.items()}


def published_baseline_errors() -> dict:
    """Test errors of the published Finetune row, the official baseline of S."""
    return {d: 1.0 - acc for d, acc in published_accuracies(BASELINE_METHOD).items()}


def s_score(acc: dict, baseline: dict | None = None, baseline_errors: dict | None = None) -> SScore:
    """Score top-1 accuracies {domain: fraction} against a baseline.

    The baseline is the published Finetune test row unless given, either as accuracies
    (`baseline`) or as errors (`baseline_errors`, e.g. from our own fine-tuning run on val
    or synthetic data); giving both is an error. Every domain of `acc` needs a baseline."""
    if baseline is not None and baseline_errors is not None:
        raise ValueError("give the baseline as accuracies or as errors, not both")
    acc = _check_fractions(acc, "accuracy")
    if baseline is not None:
        errors = {d: 1.0 - a for d, a in _check_fractions(baseline, "baseline accuracy").items()}
    elif baseline_errors is not None:
        errors = _check_fractions(baseline_errors, "baseline error")
    else:
        errors = published_baseline_errors()
    name = PUBLISHED_BASELINE if baseline is None and baseline_errors is None else CUSTOM_BASELINE
    unscorable = [d for d in acc if d not in errors]
    if unscorable:
        raise ValueError(f"no baseline error for domain(s) {', '.join(unscorable)} "
                         f"(baseline covers {', '.join(errors) or 'nothing'})")
    per_domain = {d: domain_points(1.0 - acc[d], errors[d]) for d in PAPER_ORDER if d in acc}
    missing = tuple(d for d in PAPER_ORDER if d in errors and d not in acc)
    return SScore(math.fsum(per_domain.values()), per_domain, missing, name)


def read_baseline_errors(path) -> dict:
    """{domain: error fraction} from a JSON file (--baseline-errors); ValueError naming the
    file when it cannot be read or is not one JSON object (the values are checked by s_score)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read it ({err.strerror or err})") from None
    errors = parse_json(data, path, "an object {domain: error fraction}")
    if not isinstance(errors, dict):
        raise ValueError(f"{path}: expected a JSON object {{domain: error fraction}}, found {type(errors).__name__}")
    return errors
