"""What a finished job leaves for the collector: predictions, final.json, the done marker.

final.json (format 2) holds the job's spec (hyperparameters included), whether the data
was synthetic, the backbone it started from ("track", "architecture" and "pretraining" say
on which arch and pretrained where: `track_records`), how it ran (device, step kind), the
parameters it stores beyond the backbone, and its evaluations: one per domain and
test-time policy the method has (SpotTune variants: argmax and sampled decisions, the
reported one first; other methods: one, policy null), each with a result per scored
split and the predictions file of that split. A one-domain job's `splits` repeats its
first (reported) evaluation; a multi-domain job also stores, per evaluation, the
parameters its domain owns, and once the parameters all its domains share. Its "cost"
(inference FLOPs per domain, throughput, device-hours, peak memory) is described in
decathlon.engine.cost.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from decathlon.files import write_json_atomic
from decathlon.engine import distributed
from decathlon.checkpoints import save_atomic
from decathlon.engine.cost import flops_per_image, peak_memory, time_cost
from decathlon.engine.evaluation import evaluate
from decathlon.engine.job_checks import finite_or_null
from decathlon.jobdir import FINAL_FILE, mark_done, predictions_file, read_records, track_of
from decathlon.models import reference_parameter_count

FINAL_FORMAT = 2


def final_splits(spec, manifest: dict, domain: str) -> list:
    """Splits scored and predicted at the end: val unless trained on, and test (labelled or
    not: its predictions make the submission file)."""
    splits = [] if spec.protocol == "trainval" else ["val"]
    if "test" in manifest["domains"][domain]["splits"]:
        splits.append("test")
    return splits


def backbone_record(path, checkpoint: dict | None) -> dict | None:
    """Which backbone a job started from: the file, and its own record of where it came from."""
    if checkpoint is None:
        return None
    return {"file": str(path), **(checkpoint.get("provenance") or {"kind": "ours"})}


# Where a backbone's weights came from (final.json "pretraining" kind), from its provenance
# kind (decathlon.checkpoints.load_backbone); its track is decathlon.jobdir.track_of's.
PRETRAINING_KINDS = {"ours": "suite", "pretrained by this run": "suite", "imported": "imported",
                     "external": "external", "timm-hub": "timm-hub"}


def pretraining_record(backbone: dict | None) -> dict:
    """final.json's "pretraining": {'kind': suite | imported | external | timm-hub | none,
    'source': one human line}, from the job's backbone record (None: no pretrained weights)."""
    if backbone is None:
        return {"kind": "none", "source": "none: trained from random initialisation"}
    kind = PRETRAINING_KINDS.get(backbone.get("kind"), "suite")
    name, sha = Path(backbone.get("file", "")).name, (backbone.get("sha256") or "")[:12]
    if kind == "suite":
        source = f"imagenet12, pretrained by this suite ({name}, sha256 {sha})"
    elif kind == "imported":
        public = (backbone.get("source") or {}).get("name", name)
        source = f"imagenet12, the public {public} (pretrained by its authors on the Decathlon's imagenet12)"
    elif kind == "external":
        source = f"external file {name} (sha256 {sha})"
    else:
        source = f"timm's hub: {backbone.get('pretrained') or 'pretrained weights'} (sha256 {sha})"
    return {"kind": kind, "source": source}


def architecture_record(hparams: dict) -> dict:
    """final.json's "architecture": the backbone arch and how it sees the images."""
    arch = hparams.get("arch", "resnet26")
    return {"arch": arch, "width": hparams["width"] if arch == "resnet26" else None,
            "input_size": hparams.get("input_size"), "patch_size": hparams.get("patch_size"),
            "arch_kwargs": dict(hparams.get("arch_kwargs") or {})}


def track_records(hparams: dict, backbone: dict | None) -> dict:
    """"track" (closed: only the Decathlon's data, pretraining included; open: weights
    pretrained elsewhere), "architecture" and "pretraining" of a job's final.json."""
    pretraining = pretraining_record(backbone)
    return {"track": track_of(pretraining["kind"]), "architecture": architecture_record(hparams),
            "pretraining": pretraining}


def finish(spec, method, eval_loaders: dict, scores: dict, ctx, manifest: dict, backbone: dict | None,
           execution: dict) -> dict:
    """Evaluate with every policy (reusing the last epoch's scores of the reported policy
    where this process made them), write predictions, final.json and the done marker."""
    out, hp = Path(spec.out), spec.hparams
    policies, multi = method.eval_policies(), method.multi_domain
    stored = method.stored_parameters()
    evaluations, began = [], time.perf_counter()
    for domain in spec.trained_domains:
        view = method.domain_view(domain)
        for policy in policies:
            reported = policy == policies[0]
            entries = {}
            for (of, split), loader in eval_loaders.items():
                if of != domain:
                    continue
                result = (scores.get((domain, split)) if reported else None) or evaluate(
                    view, loader, ctx, policy, hp.get("sample_draws", 1), hp.get("sample_seed", 0))
                file = predictions_file(split, policy, reported, domain if multi else None)
                entries[split] = {**result.entry(), "predictions": file}
                if ctx.is_main:
                    np.savez(out / file, image_ids=result.image_ids, labels=result.predictions)
            evaluation = {"domain": domain, "eval_policy": policy, "splits": entries}
            if multi:
                evaluation["stored_parameters"] = stored["domains"][domain]
            evaluations.append(evaluation)
    final_eval_seconds = time.perf_counter() - began
    started_from = backbone_record(spec.backbone, backbone)
    final = {"format": FINAL_FORMAT, "spec": asdict(spec), "synthetic": manifest["synthetic"],
             "backbone": started_from, **track_records(hp, started_from), "execution": execution,
             "stored_parameters": {"shared": stored["shared"]} if multi else stored,
             "num_classes": method.num_classes,
             # The backbone without classifier (one ResNet-26 at this width for the benchmark's
             # own rows): the unit of the Decathlon's #par.
             "reference_parameters": reference_parameter_count(hp),
             "splits": {} if multi else evaluations[0]["splits"], "evaluations": evaluations}
    if ctx.is_main:
        final["cost"] = _cost(spec, method, eval_loaders, ctx, execution, final_eval_seconds)
        for name, content in method.exports().items():
            save_atomic(content, out / name)
        write_json_atomic(out / FINAL_FILE, finite_or_null(final))
        mark_done(out)
    distributed.barrier(ctx)
    return final


def _cost(spec, method, eval_loaders: dict, ctx, execution: dict, final_eval_seconds: float) -> dict:
    """final.json's "cost" (decathlon.engine.cost): FLOPs per domain on its first scored
    split under the reported policy; time and memory once for the job."""
    memory = peak_memory(ctx.device)   # before the FLOP count, which is no part of the job
    flops, policy = {}, method.eval_policies()[0]
    for domain in spec.trained_domains:
        split, loader = next(((s, loader) for (of, s), loader in eval_loaders.items() if of == domain), (None, None))
        if loader is None:   # nothing scored at the end: no images to count on
            continue
        counted = flops_per_image(method.domain_view(domain), loader, policy, spec.hparams.get("sample_seed", 0))
        flops[domain] = {**counted, "split": split, "eval_policy": policy}
    return {"flops": flops, **time_cost(read_records(spec.out), final_eval_seconds, ctx.world_size,
                                        execution.get("device_name", execution["device"])), **memory}
