"""One multi-domain SpotTune model from the jobs of a run.

Each SpotTune job writes only what its domain owns (`spottune_domain.pt`); the frozen
backbone is the pretraining job's `backbone.pt`, shipped once. This puts them back
together: one SpotTuneNet, `net(x, domain)` for every domain that was trained.

A job folder is either a finished job of ours (its settings in `final.json`'s spec) or
one made by `decathlon import-spottune` from the authors' checkpoints (its settings in
`imported.json`); both kinds mix freely when they share backbone, width, policy kind
and temperature.

A job records the sha256 of the backbone file it was trained on (final.json's
`backbone`, imported.json's `backbone_provenance`), and the backbone is found again by
its path. Nothing at that path is taken on trust: the file loaded must hash to the
recorded sha256, and every job must record the same one (the same backbone, wherever
its copy lies); otherwise the jobs are refused, naming the path and both hashes.
"""
from __future__ import annotations

from pathlib import Path

import torch

from decathlon.checkpoints import CheckpointError, IMPORTED_JOB_KIND, load_backbone
from decathlon.files import parse_json, sha256_file
from decathlon.jobdir import DOMAIN_FILE, FINAL_FILE, IMPORTED_JOB_FILE, read_final
from decathlon.models import RESNET26, SpotTuneNet, resnet26


def _read_record(path: Path) -> dict:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read it ({err.strerror or err})") from None
    record = parse_json(data, path, "a job record", CheckpointError)
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return record


def _recorded_sha256(record_path: Path, provenance) -> str:
    """The sha256 of the backbone file the job was trained on, as its record states it."""
    sha256 = provenance.get("sha256") if isinstance(provenance, dict) else None
    if not isinstance(sha256, str) or len(sha256) != 64:
        raise CheckpointError(f"{record_path}: records no sha256 of the backbone the job was trained on, so the "
                              "backbone file cannot be checked; train or import the job again")
    return sha256


def _job_settings(folder: Path) -> tuple[Path, str, dict, Path]:
    """(the record read, domain, settings that must agree across jobs, backbone path) of one
    job folder; the settings hold the backbone's recorded sha256."""
    final_path, imported_path = folder / FINAL_FILE, folder / IMPORTED_JOB_FILE
    if not (folder / DOMAIN_FILE).is_file() or not (final_path.is_file() or imported_path.is_file()):
        raise CheckpointError(f"{folder}: not a finished SpotTune job (no {DOMAIN_FILE}, or neither final.json "
                              f"nor {IMPORTED_JOB_FILE})")
    if final_path.is_file():
        final = _read_record(final_path)
        spec = final["spec"]
        record_path, domain, record = final_path, spec["domain"], {**spec["hparams"], "backbone": spec["backbone"]}
        provenance = final.get("backbone")
        if record.get("arch", RESNET26) != RESNET26:
            raise CheckpointError(f"{final_path}: a SpotTune job on backbone arch {record['arch']!r}; one "
                                  "multi-domain model file is assembled from ResNet-26 jobs only: ship each job's "
                                  f"{DOMAIN_FILE} with its backbone (docs/spottune_any_backbone.md)")
    else:
        record = _read_record(imported_path)
        if record.get("kind") != IMPORTED_JOB_KIND:
            raise CheckpointError(f"{imported_path}: field 'kind' is {record.get('kind')!r}, "
                                  f"expected {IMPORTED_JOB_KIND!r}")
        record_path, domain, provenance = imported_path, record["domain"], record.get("backbone_provenance")
    settings = {"backbone sha256": _recorded_sha256(record_path, provenance), "width": record["width"],
                "policy": record["policy"], "temperature": record["temperature"]}
    # Paths as resolved from here: a trained job records its --backbone as given.
    return record_path, domain, settings, Path(record["backbone"]).resolve()


def _load_checked_backbone(path: Path, settings: dict, record_path: Path) -> dict:
    """The backbone checkpoint at `path`, refused unless it is the file the job was trained on."""
    if not path.is_file():
        raise CheckpointError(f"{path}: backbone not found (the one {record_path} was trained on)")
    expected, found = settings["backbone sha256"], sha256_file(path)
    if found != expected:
        raise CheckpointError(f"{path}: sha256 {found}, but {record_path} records that the job was trained on "
                              f"sha256 {expected}: the backbone file was replaced; put the original back")
    return load_backbone(path, settings["width"])


def model_info(job_dirs) -> dict:
    """What a model file assembled from `job_dirs` records: the method, and the augmentation
    and centre-crop rounding its domains were trained with (imported jobs: the public
    SpotTune code's, which ran under Python 2)."""
    methods, views = set(), set()
    for folder in map(Path, job_dirs):
        if (folder / FINAL_FILE).is_file():
            spec = read_final(folder)["spec"]
            methods.add(spec["method"])
            views.add((spec["hparams"]["augmentation"], spec["hparams"].get("crop_rounding", "half_even")))
        else:
            methods.add("spottune (imported)")
            views.add(("spottune", "half_away"))
    if len(views) > 1:
        raise CheckpointError("the jobs were trained with different test views (augmentation, crop_rounding): "
                              + ", ".join(map(str, sorted(views))))
    augmentation, crop_rounding = views.pop() if views else ("spottune", "half_even")
    return {"method": " + ".join(sorted(methods)), "augmentation": augmentation, "crop_rounding": crop_rounding,
            "assembled_from": [str(Path(folder)) for folder in job_dirs]}


def assemble_spottune(job_dirs) -> SpotTuneNet:
    """The SpotTuneNet of the finished SpotTune-variant jobs in `job_dirs` (one per domain,
    all trained on the same backbone with the same width and policy kind); the backbone
    file is checked against the sha256 every job records (see the module docstring)."""
    net, settings = None, None
    for folder in map(Path, job_dirs):
        record_path, domain, mine, backbone_path = _job_settings(folder)
        if net is None:
            state = _load_checked_backbone(backbone_path, mine, record_path)["state"]
            backbone = resnet26(state["classifier.weight"].shape[0], mine["width"])
            backbone.load_state_dict(state)
            net, settings = SpotTuneNet(backbone, mine["policy"], temperature=mine["temperature"]), mine
        elif mine["backbone sha256"] != settings["backbone sha256"]:
            raise CheckpointError(f"{record_path}: trained on the backbone with sha256 {mine['backbone sha256']}, "
                                  f"the other jobs on sha256 {settings['backbone sha256']}: all jobs must share "
                                  "one backbone")
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
