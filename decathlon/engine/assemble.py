"""One multi-domain SpotTune model from the jobs of a run.

Each SpotTune job writes only what its domain owns (`spottune_domain.pt`); the frozen
backbone is the pretraining job's `backbone.pt`, shipped once. This puts them back
together: one SpotTuneNet, `net(x, domain)` for every domain that was trained.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from decathlon.engine.checkpoint import CheckpointError, load_backbone
from decathlon.methods.spottune import DOMAIN_FILE
from decathlon.models import SpotTuneNet, resnet26


def assemble_spottune(job_dirs) -> SpotTuneNet:
    """The SpotTuneNet of the finished SpotTune-variant jobs in `job_dirs` (one per domain,
    all trained on the same backbone with the same width and policy kind)."""
    net, settings = None, None
    for folder in map(Path, job_dirs):
        final_path = folder / "final.json"
        if not (folder / DOMAIN_FILE).is_file() or not final_path.is_file():
            raise CheckpointError(f"{folder}: not a finished SpotTune job (no {DOMAIN_FILE} or final.json)")
        spec = json.loads(final_path.read_text())["spec"]
        hp = spec["hparams"]
        mine = {"backbone": spec["backbone"], "width": hp["width"], "policy": hp["policy"],
                "temperature": hp["temperature"]}
        if net is None:
            state = load_backbone(mine["backbone"], mine["width"])["state"]
            backbone = resnet26(state["classifier.weight"].shape[0], mine["width"])
            backbone.load_state_dict(state)
            net, settings = SpotTuneNet(backbone, mine["policy"], temperature=mine["temperature"]), mine
        elif mine != settings:
            raise CheckpointError(f"{final_path}: trained with {mine}, the other jobs with {settings}")
        if spec["domain"] in net.domains:
            raise CheckpointError(f"{final_path}: a second job for domain {spec['domain']!r}")
        net.load_domain_state_dict(spec["domain"], torch.load(folder / DOMAIN_FILE, weights_only=False))
    if net is None:
        raise CheckpointError("no SpotTune jobs given")
    return net.eval()
