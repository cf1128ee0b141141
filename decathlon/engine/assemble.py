"""One multi-domain SpotTune model from the jobs of a run.

Each SpotTune job writes only what its domain owns (`spottune_domain.pt`); the frozen
backbone is the pretraining job's `backbone.pt`, shipped once. This puts them back
together: one SpotTuneNet, `net(x, domain)` for every domain that was trained.

A job folder is either a finished job of ours (its settings in `final.json`'s spec) or
one made by `decathlon import-spottune` from the authors' checkpoints (its settings in
`imported.json`); both kinds mix freely when they share backbone, width, policy kind
and temperature.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from decathlon.engine.checkpoint import CheckpointError, load_backbone
from decathlon.engine.import_public import IMPORTED_JOB_FILE, IMPORTED_JOB_KIND
from decathlon.methods.spottune import DOMAIN_FILE
from decathlon.models import SpotTuneNet, resnet26


def _job_settings(folder: Path) -> tuple[Path, str, dict]:
    """(the record read, domain, settings that must agree across jobs) of one job folder."""
    final_path, imported_path = folder / "final.json", folder / IMPORTED_JOB_FILE
    if not (folder / DOMAIN_FILE).is_file() or not (final_path.is_file() or imported_path.is_file()):
        raise CheckpointError(f"{folder}: not a finished SpotTune job (no {DOMAIN_FILE}, or neither final.json "
                              f"nor {IMPORTED_JOB_FILE})")
    if final_path.is_file():
        spec = json.loads(final_path.read_text())["spec"]
        record_path, domain, record = final_path, spec["domain"], {**spec["hparams"], "backbone": spec["backbone"]}
    else:
        record = json.loads(imported_path.read_text())
        if record.get("kind") != IMPORTED_JOB_KIND:
            raise CheckpointError(f"{imported_path}: field 'kind' is {record.get('kind')!r}, "
                                  f"expected {IMPORTED_JOB_KIND!r}")
        record_path, domain = imported_path, record["domain"]
    # Paths as resolved from here: a trained job records its --backbone as given.
    settings = {"backbone": str(Path(record["backbone"]).resolve()), "width": record["width"],
                "policy": record["policy"], "temperature": record["temperature"]}
    return record_path, domain, settings


def model_info(job_dirs) -> dict:
    """What a model file assembled from `job_dirs` records: the method and the augmentation
    its domains were trained with (imported jobs: the public SpotTune code's)."""
    methods, augmentations = set(), set()
    for folder in map(Path, job_dirs):
        if (folder / "final.json").is_file():
            spec = json.loads((folder / "final.json").read_text())["spec"]
            methods.add(spec["method"])
            augmentations.add(spec["hparams"]["augmentation"])
        else:
            methods.add("spottune (imported)")
            augmentations.add("spottune")
    if len(augmentations) > 1:
        raise CheckpointError(f"the jobs were trained with different augmentations ({', '.join(sorted(augmentations))})")
    return {"method": " + ".join(sorted(methods)), "augmentation": augmentations.pop() if augmentations else "spottune",
            "assembled_from": [str(Path(folder)) for folder in job_dirs]}


def assemble_spottune(job_dirs) -> SpotTuneNet:
    """The SpotTuneNet of the finished SpotTune-variant jobs in `job_dirs` (one per domain,
    all trained on the same backbone with the same width and policy kind)."""
    net, settings = None, None
    for folder in map(Path, job_dirs):
        record_path, domain, mine = _job_settings(folder)
        if net is None:
            state = load_backbone(mine["backbone"], mine["width"])["state"]
            backbone = resnet26(state["classifier.weight"].shape[0], mine["width"])
            backbone.load_state_dict(state)
            net, settings = SpotTuneNet(backbone, mine["policy"], temperature=mine["temperature"]), mine
        elif mine != settings:
            raise CheckpointError(f"{record_path}: trained with {mine}, the other jobs with {settings}")
        if domain in net.domains:
            raise CheckpointError(f"{record_path}: a second job for domain {domain!r}")
        try:
            domain_state = torch.load(folder / DOMAIN_FILE, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for damaged or foreign files
            raise CheckpointError(f"{folder / DOMAIN_FILE}: cannot read it with torch.load(weights_only=True) "
                                  f"({type(err).__name__})") from None
        net.load_domain_state_dict(domain, domain_state)
    if net is None:
        raise CheckpointError("no SpotTune jobs given")
    return net.eval()
