"""What a finished job leaves for the collector: predictions, final.json, the done marker.

final.json (format 2) holds the job's spec (hyperparameters included), whether the data
was synthetic, the backbone it started from, how it ran (device, step kind), the
parameters it stores beyond the backbone, and its evaluations: one per test-time policy
the method has (SpotTune variants: argmax and sampled decisions, the reported one
first; other methods: one, policy null), each with a result per scored split and the
predictions file of that split. `splits` repeats the first (reported) evaluation.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from decathlon.data.manifest import write_json_atomic
from decathlon.engine import distributed
from decathlon.engine.checkpoint import save_atomic
from decathlon.engine.evaluate import evaluate
from decathlon.models import resnet26

FINAL_FORMAT = 2


def final_splits(spec, manifest: dict) -> list:
    """Splits scored and predicted at the end: val unless trained on, and test (labelled or
    not: its predictions make the submission file)."""
    splits = [] if spec.protocol == "trainval" else ["val"]
    if "test" in manifest["domains"][spec.domain]["splits"]:
        splits.append("test")
    return splits


def predictions_file(split: str, policy: str | None, reported: bool) -> str:
    """predictions_<split>.npz for the reported policy, predictions_<split>-eval-<policy>.npz else."""
    return f"predictions_{split}.npz" if reported else f"predictions_{split}-eval-{policy}.npz"


def backbone_record(path, checkpoint: dict | None) -> dict | None:
    """Which backbone a job started from: the file, and its own record of where it came from."""
    if checkpoint is None:
        return None
    return {"file": str(path), **(checkpoint.get("provenance") or {"kind": "ours"})}


def finish(spec, method, eval_loaders: dict, scores: dict, ctx, manifest: dict, backbone: dict | None,
           execution: dict) -> dict:
    """Evaluate with every policy (reusing the last epoch's scores of the reported policy
    where this process made them), write predictions, final.json and the done marker."""
    out, hp = Path(spec.out), spec.hparams
    policies = method.eval_policies()
    evaluations = []
    for policy in policies:
        reported = policy == policies[0]
        entries = {}
        for split, loader in eval_loaders.items():
            result = (scores.get(split) if reported else None) or evaluate(
                method, loader, ctx, policy, hp.get("sample_draws", 1), hp.get("sample_seed", 0))
            file = predictions_file(split, policy, reported)
            entries[split] = {**result.entry(), "predictions": file}
            if ctx.is_main:
                np.savez(out / file, image_ids=result.image_ids, labels=result.predictions)
        evaluations.append({"eval_policy": policy, "splits": entries})
    final = {"format": FINAL_FORMAT, "spec": asdict(spec), "synthetic": manifest["synthetic"],
             "backbone": backbone_record(spec.backbone, backbone), "execution": execution,
             "stored_parameters": method.stored_parameters(), "num_classes": method.num_classes,
             # One ResNet-26 at this width without classifier: the unit of the Decathlon's #par.
             "reference_parameters": sum(p.numel() for p in resnet26(0, hp["width"]).parameters()),
             "splits": evaluations[0]["splits"], "evaluations": evaluations}
    if ctx.is_main:
        for name, content in method.exports().items():
            save_atomic(content, out / name)
        write_json_atomic(out / "final.json", final)
        (out / "done").write_text("")
    distributed.barrier(ctx)
    return final
