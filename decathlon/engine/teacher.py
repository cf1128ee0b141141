"""The teacher a distilling method (NetTailor) learns from: a finished finetune job.

The teacher must be the finetune job of the same domain, seed, protocol, width and preset
(in `run_decathlon.py`, the run's own finetune job, trained first and never twice). Its
weights come from its job checkpoint, read with torch.load(weights_only=True). Anything
else is refused with one line naming the job folder the student needs.
"""
from __future__ import annotations

from pathlib import Path

from decathlon.checkpoints import CheckpointError, load_checkpoint
from decathlon.engine.job_checks import JobError
from decathlon.jobdir import CHECKPOINT_FILE, is_done, read_final

TEACHER_METHOD = "finetune"


def _wanted(spec) -> str:
    return (f"a finished {TEACHER_METHOD} job of domain {spec.domain!r}, seed {spec.seed}, protocol "
            f"{spec.protocol!r}, width {spec.hparams['width']}")


def teacher_arguments(spec, method_cls) -> dict:
    """The keywords the method is built with: its teacher's weights if it distils ({} if
    not; a teacher given to a method that takes none is refused)."""
    if getattr(method_cls, "needs_teacher", False):
        return {"teacher_state": load_teacher(spec)}
    if spec.teacher:
        raise JobError(f"method {spec.method!r} takes no teacher (--teacher {spec.teacher}); only a distilling "
                       f"method (nettailor) does")
    return {}


def load_teacher(spec) -> dict:
    """The teacher network's state dict (keys as in a ResNet-26), after checking that
    `spec.teacher` is a finished finetune job matching the student job `spec`."""
    if not spec.teacher:
        raise JobError(f"method {spec.method!r} distils from {_wanted(spec)}: pass its job folder with --teacher")
    folder = Path(spec.teacher)
    if not is_done(folder):
        raise JobError(f"teacher job {folder}: not finished (no 'done' marker); method {spec.method!r} needs "
                       f"{_wanted(spec)} there: train or resume it first")
    try:
        teacher = read_final(folder)["spec"]
    except (OSError, ValueError, KeyError) as err:
        raise JobError(f"teacher job {folder}: its final.json is unreadable ({err}); method {spec.method!r} "
                       f"needs {_wanted(spec)}") from None
    found = {"method": teacher.get("method"), "domain": teacher.get("domain"), "seed": teacher.get("seed"),
             "protocol": teacher.get("protocol"), "width": (teacher.get("hparams") or {}).get("width")}
    wanted = {"method": TEACHER_METHOD, "domain": spec.domain, "seed": spec.seed, "protocol": spec.protocol,
              "width": spec.hparams["width"]}
    preset, teacher_preset = (spec.extra or {}).get("preset"), (teacher.get("extra") or {}).get("preset")
    if preset and teacher_preset:
        found["preset"], wanted["preset"] = teacher_preset, preset
    differs = [f"{key}={found[key]!r}" for key in wanted if found[key] != wanted[key]]
    if differs:
        raise JobError(f"teacher job {folder}: has {', '.join(differs)}; method {spec.method!r} needs "
                       f"{_wanted(spec)}" + (f", preset {preset!r}" if "preset" in wanted else ""))
    try:
        state = load_checkpoint(folder / CHECKPOINT_FILE, "job")["method"]
    except CheckpointError as err:
        raise JobError(f"teacher job {folder}: {err}") from None
    return {key.removeprefix("net."): value for key, value in state.items() if key.startswith("net.")}
