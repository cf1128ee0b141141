"""Tracks: which rows may stand in one ranking, and the backbone every row records.

Closed track: the backbone learned from the Decathlon's own data only. Pretraining kind
'suite' (imagenet12, pretrained by this suite, on any architecture), 'imported' (the public
resnet26_pretrained.t7, trained on the Decathlon's imagenet12) or 'none' (from scratch). The
published 2019 rows are closed track (ResNet-26 pretrained on the Decathlon's imagenet12).
Open track: the backbone saw external pretraining data, kind 'external' (a weight file) or
'timm-hub' (timm's pretrained loading). Open rows are never ranked with closed ones: their
backbones learned from data the closed track may not use.

A job's final.json says so in "track", "architecture" and "pretraining". Older records lack
them: they are closed-track rows of the hyperparameters' architecture (resnet26 before it
could be chosen), pretraining read from their "backbone" record (the kinds of each track and the rule are
decathlon.jobdir's, which the trainer writes by). A record whose track and
pretraining disagree is refused (never counted), so an open row cannot enter a closed ranking.
"""
from __future__ import annotations

import json
from pathlib import Path

from decathlon.jobdir import CLOSED_PRETRAINING, OPEN_PRETRAINING, track_of

CLOSED, OPEN = "closed", "open"
TRACKS = (CLOSED, OPEN)
REFERENCE_ARCH = "resnet26"   # the Decathlon's backbone: the published rows' and the default rows'
NATIVE = "native"             # input size None: the 72-px images as they are
# Hyperparameters shown in their own columns (and in the row's backbone tag), not in its options.
ARCH_KEYS = ("arch", "input_size", "patch_size", "arch_kwargs")
# Methods whose job starts from no backbone: an old record without one is pretraining 'none'.
FROM_NOTHING = ("pretrain", "scratch")
BACKBONE_OF_THIS_RUN = "pretrained by this run"
OPEN_BOARD_BACKBONE = "each row's own (see its backbone and pretraining columns)"
PUBLISHED_PRETRAINING = "imagenet12 of the Decathlon (published)"

CLOSED_WHY = ("Closed track: backbones that learned from the Decathlon's own data only (imagenet12 pretrained by "
              "this suite or the public resnet26_pretrained.t7, or none); the published 2019 rows are closed track.")
OPEN_WHY = ("Open track: backbones pretrained on external data (a weight file or timm's hub). They are not ranked "
            "with the closed track, whose backbones saw the Decathlon's imagenet12 only: a difference in S there "
            "says as much about the pretraining data as about the method.")
PAR_UNIT = ("#par: model size in units of the row's own backbone without classifier (one ResNet-26 for the "
            "resnet26 rows and the published ones): 1 for the shared backbone plus each target domain's stored "
            "parameters without its classifier.")


class TrackError(ValueError):
    """A final.json whose track, architecture or pretraining fields cannot be read."""


def backbone_label(record: dict | None) -> str:
    """Where a job's backbone came from: pretrained by this run (a pretraining job, which
    starts from none, makes it), imported from a public file, or ours from another run
    (both named, with the sha256 of what was imported or loaded)."""
    kind = (record or {}).get("kind")
    if kind is None or kind == BACKBONE_OF_THIS_RUN:
        return BACKBONE_OF_THIS_RUN
    source = record.get("source") or record
    name = source.get("name") or Path(str(record.get("file"))).name
    what = {"imported": "imported", "ours": "ours, from"}.get(kind, kind)
    return f"{what} {name} (sha256 {str(source.get('sha256'))[:12]})"


def variant_name(method: str, eval_policy: str | None, options: str = "", tag: str = "") -> str:
    """'spottune (eval sample; precision=bf16)', then ' · <backbone tag>' for a backbone other
    than the default: the row label of a table."""
    details = "; ".join(part for part in ((eval_policy and f"eval {eval_policy}"), options) if part)
    return (f"{method} ({details})" if details else method) + (f" · {tag}" if tag else "")


def selection_label(selection: dict) -> str:
    """How a sweep's chosen job was chosen ('selected on val over 3 trials'), with the
    overrides every trial had: its row is never pooled with the preset's own."""
    fixed = options_label(selection.get("fixed"))
    return f"selected on val over {selection.get('trials')} trials" + (f", {fixed}" if fixed else "")


def options_label(overrides: dict | None) -> str:
    """The hyperparameters a run overrode, as 'key=value, ...' in key order ('' for none);
    the architecture's (ARCH_KEYS) are left to the row's backbone tag and columns."""
    return ", ".join(f"{key}={value}" for key, value in sorted((overrides or {}).items()) if key not in ARCH_KEYS)


def on_reference_backbone(row: dict) -> bool:
    """Whether a table row (Leaderboard.row) stands on the published rows' backbone: closed
    track, resnet26 on native input (a row a table does not describe counts as one)."""
    return (row.get("track") in (CLOSED, "") and row.get("arch") in (REFERENCE_ARCH, "")
            and row.get("input_size") in (NATIVE, "") and row.get("patch_size") is None)


def input_label(size) -> str:
    """'native' (the images as they are) or '224 px' (every batch resized to 224x224)."""
    return NATIVE if size is None else f"{size} px"


def _architecture(final: dict, hparams: dict) -> dict:
    recorded = final.get("architecture")
    if recorded is None:
        recorded = {key: hparams.get(key) for key in ("arch", "width", "input_size", "patch_size", "arch_kwargs")}
        recorded["arch"] = recorded["arch"] or REFERENCE_ARCH
    if not isinstance(recorded, dict) or not isinstance(recorded.get("arch"), str) or not recorded["arch"]:
        raise TrackError(f"field 'architecture' is {recorded!r}, expected an object with a string 'arch'")
    kwargs = recorded.get("arch_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise TrackError(f"field 'architecture.arch_kwargs' is {kwargs!r}, expected an object")
    for key in ("input_size", "patch_size"):
        if recorded.get(key) is not None and not isinstance(recorded[key], int):
            raise TrackError(f"field 'architecture.{key}' is {recorded[key]!r}, expected an integer or null")
    return {"arch": recorded["arch"], "input_size": recorded.get("input_size"),
            "patch_size": recorded.get("patch_size"), "arch_kwargs": json.dumps(kwargs, sort_keys=True)}


def _pretraining(final: dict, method: str) -> tuple:
    """(kind, source line) from the record, or from an older record's "backbone"."""
    recorded = final.get("pretraining")
    if recorded is not None:
        kinds = CLOSED_PRETRAINING + OPEN_PRETRAINING
        if not isinstance(recorded, dict) or recorded.get("kind") not in kinds:
            raise TrackError(f"field 'pretraining' is {recorded!r}, expected an object whose 'kind' is one of "
                             f"{', '.join(kinds)}")
        return recorded["kind"], str(recorded.get("source") or recorded["kind"])
    backbone = final.get("backbone")
    if backbone is None and method in FROM_NOTHING:
        return "none", "none (random initialisation)"
    label = backbone_label(backbone)
    if (backbone or {}).get("kind") == "imported":
        return "imported", label
    return "suite", f"imagenet12, {label}"


def job_backbone(final: dict, method: str) -> dict:
    """The row fields of a job's backbone: track, arch, input_size, patch_size, arch_kwargs
    (JSON), pretraining_kind, pretraining (the source line) and backbone_tag (see
    `backbone_tag`). TrackError names the field and what was expected."""
    hparams = (final.get("spec") or {}).get("hparams") or {}
    fields = _architecture(final, hparams)
    kind, source = _pretraining(final, method)
    implied = track_of(kind)
    track = final.get("track", implied)
    if track not in TRACKS:
        raise TrackError(f"field 'track' is {track!r}, expected 'closed' or 'open'")
    if track != implied:
        data = "external data" if implied == OPEN else "the Decathlon's own data"
        raise TrackError(f"field 'track' is {track!r}, but pretraining kind {kind!r} is {implied} track ({data})")
    fields.update(track=track, pretraining_kind=kind, pretraining=source)
    return {**fields, "backbone_tag": backbone_tag(fields)}


def backbone_tag(fields: dict) -> str:
    """What sets a row's backbone apart from the Decathlon's default (resnet26 on native
    input, closed track): '' for that one, else e.g. 'vit_tiny_patch16_224 (depth=2) native
    patch 8' and, for the open track, its pretraining source. It is part of the row's label,
    so that no two backbones or tracks are ever pooled into one row, one policy plot or one
    submission file."""
    kwargs = json.loads(fields.get("arch_kwargs") or "{}")
    parts = []
    if fields["arch"] != REFERENCE_ARCH or kwargs or fields.get("input_size") or fields.get("patch_size"):
        name = fields["arch"].removeprefix("timm:")
        if kwargs:
            name += " (" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(kwargs.items())) + ")"
        patch = f" patch {fields['patch_size']}" if fields.get("patch_size") else ""
        parts.append(f"{name} {input_label(fields.get('input_size'))}{patch}")
    if fields["track"] == OPEN:
        parts.append(fields["pretraining"])
    return " · ".join(parts)
