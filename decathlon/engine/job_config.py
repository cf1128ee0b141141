"""A job's settings as the options of the command that trains it again: what the engine
writes into every job folder as config.yaml (decathlon.jobdir.write_config), so that
`decathlon train --config <job>/config.yaml --out NEW` (a pretraining job: `decathlon
pretrain --config ...`) runs the same job (docs/config.md).

`hparams` holds the job's overrides of its preset, as `--hparam` gives them, and
`resolved_hparams` every value the job trained with: the command reading the file back
refuses to run when the preset and overrides no longer resolve to them."""
from __future__ import annotations

PRETRAIN_METHOD = "pretrain"   # the method name of pretraining jobs (decathlon.engine.pretraining)


def job_settings(spec) -> dict:
    """The job's `decathlon train` (or `pretrain`) options, keyed as their argparse dests."""
    extra = spec.extra or {}
    job = {} if spec.method == PRETRAIN_METHOD else {
        "method": spec.method, "domain": ",".join(spec.trained_domains), "protocol": spec.protocol,
        "backbone": spec.backbone, "teacher": spec.teacher}
    preset = {"preset": extra["preset"]} if extra.get("preset") else {}
    return {**job, "data": str(spec.data), **preset, "hparams": dict(extra.get("overrides") or {}),
            "seed": spec.seed, "device": spec.device, "compile": spec.compile,
            "no_cuda_graphs": spec.cuda_graphs is False, "no_cudnn_benchmark": not spec.cudnn_benchmark,
            "no_progress": not spec.progress, "resolved_hparams": spec.hparams}
