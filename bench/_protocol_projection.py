"""Projected wall time of the paper protocols from measured rates and the registry's split sizes.

A job's time is its training images (epochs x train, or train+val, images) over its
measured training rate, plus its evaluations over the measured evaluation rate:
per-epoch val under protocol train, and the final val/test passes once per test-time
policy. Jobs N at a time share the device at the measured concurrency c (summed rate of
N jobs over one job's): their total is max(sum of job times / c, longest job x N / c).
Pretraining is one job, alone on the device; spottune_joint is one job over all domains.
"""
from __future__ import annotations

from decathlon.benchmark import hparams, preset_protocol, pretrain_hparams
from decathlon.data import SOURCE_DOMAIN, TARGET_DOMAINS, get_domain
from decathlon.methods import METHODS

# Each method timed as the measured method whose step costs at least as much. The methods
# after 2019 (piggyback, taps, nettailor) have no measured stand-in here, and are not projected.
FAMILY = {"scratch": "finetune", "feature_extractor": "finetune", "finetune": "finetune", "bn_adapt": "finetune",
          "series_adapters": "parallel_adapters", "parallel_adapters": "parallel_adapters",
          "spottune": "spottune", "spottune_global": "spottune", "random_policy": "spottune",
          "spottune_joint": "spottune"}
EVAL_PASSES = {"spottune": 2, "spottune_global": 2, "spottune_joint": 2}   # argmax and sampled; others one
PROTOCOLS = (("spottune_paper", ("finetune", "spottune"), "pretrain + finetune + spottune"),
             ("spottune_paper", None, "pretrain + every method up to SpotTune"),
             ("adapters_paper", ("finetune", "parallel_adapters", "series_adapters"),
              "pretrain + finetune + both adapters"),
             ("adapters_paper", None, "pretrain + every method up to SpotTune"))


def _pretrain_seconds(report: dict, preset: str) -> float:
    hp, rates = pretrain_hparams(preset), report["pretrain"]
    sizes = get_domain(SOURCE_DOMAIN).sizes
    evaluated = hp["epochs"] * sizes["val"] + sizes["val"] + sizes["test"]
    return hp["epochs"] * sizes["train"] / rates["train_images_per_s"] + evaluated / rates["eval_images_per_s"]


def _job_seconds(report: dict, geometry_of, preset: str, method: str, domain: str) -> float:
    hp, protocol = hparams(method, domain, preset), preset_protocol(preset)
    sizes = get_domain(domain).sizes
    rates = report["single"][f"{FAMILY[method]}/{geometry_of(domain, hp['augmentation'])}"]
    train_images = sizes["train"] + (sizes["val"] if protocol == "trainval" else 0)
    final_images = sizes["test"] + (sizes["val"] if protocol == "train" else 0)
    per_epoch_eval = sizes["val"] if protocol == "train" else 0
    evaluated = hp["epochs"] * per_epoch_eval + EVAL_PASSES.get(method, 1) * final_images
    return hp["epochs"] * train_images / rates["train_images_per_s"] + evaluated / rates["eval_images_per_s"]


def _concurrency(report: dict, method: str) -> float:
    measured = report["concurrent"]
    family = FAMILY[method]
    row = measured.get(family) or measured.get("finetune")
    return row["over_one_job"]


def project(report: dict, geometry_of, all_methods: tuple, n: int) -> list:
    """One row per (preset, method set): pretraining, jobs one and N at a time, totals (hours)."""
    rows = []
    for preset, methods, label in PROTOCOLS:
        methods = methods or tuple(method for method in all_methods if method in FAMILY)
        pretrain_s = _pretrain_seconds(report, preset)
        jobs = []
        for method in methods:
            seconds = [_job_seconds(report, geometry_of, preset, method, domain) for domain in TARGET_DOMAINS]
            # A multi-domain method is one job over every domain (each at its per-domain cost).
            jobs += [(method, sum(seconds))] if METHODS[method].multi_domain else [(method, t) for t in seconds]
        one_at_a_time = sum(seconds for _, seconds in jobs)
        work = sum(seconds / _concurrency(report, method) for method, seconds in jobs)
        longest = max(seconds * n / _concurrency(report, method) for method, seconds in jobs)
        parallel = max(work, longest)
        rows.append({"preset": preset, "protocol": preset_protocol(preset), "methods": list(methods),
                     "methods_label": label, "n": n, "pretrain_h": pretrain_s / 3600,
                     "jobs_h": one_at_a_time / 3600, "total_h": (pretrain_s + one_at_a_time) / 3600,
                     "jobs_parallel_h": parallel / 3600, "total_parallel_h": (pretrain_s + parallel) / 3600})
    return rows
