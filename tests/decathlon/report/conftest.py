"""The run fabricator of the report tests: a hand-written run folder with known numbers.

`write_run(root, synthetic=True, finetune=True, test_labels=True)` writes finetune and
spottune jobs on dtd and svhn with seeds 0 and 1, a pretraining job, and one unfinished
spottune job, and returns the run folder. Its records are of the format before tracks: they
read as closed-track resnet26 rows.
`write_tracks_run(root, synthetic=True)` adds records with track, architecture and
pretraining: a closed-track timm:resnet18 (112 px) pretrained by the suite, with its own
pretraining job, and open-track ViT rows (timm's hub, and an external weight file), the ViT's
SpotTune with a 4-block policy.
"""
import json

import numpy as np
import pytest

from decathlon.data.domains import ID_SPLIT_FACTOR, SPLIT_INDEX
from decathlon.data import get_domain

REFERENCE_PARAMETERS = 1000   # one ResNet-26 (made up); every classifier has 100
POLICY_USAGE = [0.0, 0.25, 0.5, 0.75, 1.0, 0.5, 0.5, 0.5, 0.1, 0.2, 0.3, 0.4]
IMAGES = 5
# (method, domain, seed): (val accuracy, test accuracy, stored parameters with classifier)
JOBS = {
    ("finetune", "dtd", 0): (0.55, 0.50, 1100), ("finetune", "dtd", 1): (0.55, 0.50, 1100),
    ("finetune", "svhn", 0): (0.80, 0.70, 1100), ("finetune", "svhn", 1): (0.80, 0.70, 1100),
    ("spottune", "dtd", 0): (0.60, 0.55, 1600), ("spottune", "dtd", 1): (0.70, 0.65, 1600),
    ("spottune", "svhn", 0): (0.90, 0.75, 1600), ("spottune", "svhn", 1): (0.84, 0.85, 1800),
}
PRETRAIN_ACCURACY = (0.40, 0.30)   # val, test


def _test_ids(domain):
    d = get_domain(domain)
    return d.category_offset + SPLIT_INDEX["test"] * ID_SPLIT_FACTOR + d.sizes["train"] + d.sizes["val"] + \
        np.arange(1, IMAGES + 1)


def write_job(folder, method, domain, seed, accuracies, total, synthetic, test_labels=True, overrides=None,
              fields=None, policy_usage=POLICY_USAGE):
    """One finished job; `fields` are final.json keys of newer records (track, architecture,
    pretraining, backbone), `overrides` the run's hyperparameter overrides."""
    folder.mkdir(parents=True)
    hparams = {"width": 0.25, "epochs": 2, **({"eval_policy": "argmax"} if method == "spottune" else {})}
    stats = {"policy_usage": policy_usage} if method == "spottune" else {}
    splits = {split: {"accuracy": accuracy, "num_images": IMAGES, "stats": stats}
              for split, accuracy in zip(("val", "test"), accuracies)}
    if not test_labels:
        splits["test"]["accuracy"] = None
    final = {"spec": {"method": method, "domain": domain, "data": "data/x", "out": str(folder), "hparams": hparams,
                      "protocol": "train", "seed": seed, "backbone": None, "device": "cpu", "compile": False,
                      "progress": False, "resume": False,
                      "extra": {"preset": "cpu_demo", **({"overrides": overrides} if overrides else {})}},
             "synthetic": synthetic, "stored_parameters": {"total": total, "classifier": 100},
             "num_classes": get_domain(domain).num_classes, "reference_parameters": REFERENCE_PARAMETERS,
             "splits": splits, **(fields or {})}
    (folder / "final.json").write_text(json.dumps(final))
    epochs = [{"epoch": e, "train_loss": 2.0 / e, "lr": 0.1, "seconds": 1.0, "train_images_per_s": 10.0,
               "val_accuracy": accuracies[0] - 0.1 / e, "test_accuracy": splits["test"]["accuracy"]}
              for e in (1, 2)]
    (folder / "record.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    for split in ("val", "test"):
        np.savez(folder / f"predictions_{split}.npz", image_ids=_test_ids(domain), labels=np.arange(IMAGES) % 2)
    (folder / "done").write_text("")


def _write_run(root, synthetic=True, finetune=True, test_labels=True):
    """A fabricated run folder; returns its path."""
    run = root / ("synthetic-run" if synthetic else "real-run")
    for (method, domain, seed), (val, test, total) in JOBS.items():
        if method == "finetune" and not finetune:
            continue
        write_job(run / "jobs" / "cpu_demo-train" / method / domain / f"seed{seed}", method, domain, seed,
                  (val, test), total, synthetic, test_labels)
    write_job(run / "pretrain" / "cpu_demo-seed0", "pretrain", "imagenet12", 0, PRETRAIN_ACCURACY,
              REFERENCE_PARAMETERS + 100, synthetic, test_labels)
    unfinished = run / "jobs" / "cpu_demo-train" / "spottune" / "svhn" / "seed2"
    unfinished.mkdir(parents=True)
    (unfinished / "record.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n")
    return run



@pytest.fixture
def write_run():
    return _write_run


VIT = {"arch": "timm:vit_tiny_patch16_224", "width": None, "input_size": None, "patch_size": 8,
       "arch_kwargs": {"depth": 2, "embed_dim": 48, "num_heads": 2}}
RESNET18 = {"arch": "timm:resnet18", "width": None, "input_size": 112, "patch_size": None, "arch_kwargs": {}}
HUB = {"kind": "timm-hub", "source": "timm hub weights vit_tiny_patch16_224.augreg_in21k"}
EXTERNAL = {"kind": "external", "source": "external file vit_t.safetensors (sha256 1a2b3c4d5e6f)"}
SUITE = {"kind": "suite", "source": "imagenet12, pretrained by this suite"}
# (method, architecture, pretraining): (dtd, svhn) val = test accuracy, seed 0 only
TRACK_JOBS = {
    ("finetune", "resnet18", "suite"): (0.60, 0.85), ("lora", "vit", "timm-hub"): (0.70, 0.90),
    ("lora", "vit", "external"): (0.50, 0.60), ("spottune", "vit", "timm-hub"): (0.75, 0.95),
}


def _track_fields(architecture, pretraining):
    track = "closed" if pretraining["kind"] in ("suite", "none") else "open"
    overrides = {k: architecture[k] for k in ("arch", "input_size", "patch_size", "arch_kwargs")
                 if architecture[k] not in (None, {})}
    return overrides, {"track": track, "architecture": architecture, "pretraining": pretraining,
                       "backbone": {"file": "x/backbone.pt", "kind": "pretrained by this run"}
                       if pretraining is SUITE else None}


def _write_tracks_run(root, synthetic=True):
    """write_run's run folder plus the records of both tracks described above."""
    run = _write_run(root, synthetic=synthetic)
    archs, pretrainings = {"vit": VIT, "resnet18": RESNET18}, {"timm-hub": HUB, "external": EXTERNAL, "suite": SUITE}
    for index, ((method, arch, kind), accuracies) in enumerate(TRACK_JOBS.items()):
        overrides, fields = _track_fields(archs[arch], pretrainings[kind])
        for domain, accuracy in zip(("dtd", "svhn"), accuracies):
            write_job(run / "jobs" / "cpu_demo-train" / f"{method}-h{index}" / domain / "seed0", method, domain, 0,
                      (accuracy, accuracy), 1100 if method == "finetune" else 1010, synthetic, overrides=overrides,
                      fields=fields, policy_usage=[0.1, 0.2, 0.3, 0.4])
    overrides, fields = _track_fields(RESNET18, {"kind": "none", "source": "none"})
    write_job(run / "pretrain" / "cpu_demo-hr18-seed0", "pretrain", "imagenet12", 0, (0.20, 0.25),
              REFERENCE_PARAMETERS + 100, synthetic, overrides=overrides, fields=fields)
    return run


@pytest.fixture
def write_tracks_run():
    return _write_tracks_run

