"""Checkpoint files: ours (`ours`: save, load with weights_only=True, resume checks) and the
public codes' (`legacy_pickle` reads the legacy torch container with an allow-list of
`legacy_globals`; `public` maps the .t7 networks onto our state dicts; `importers` turns
them into our files); `foreign` reads backbone weights made elsewhere for a timm arch (a
safetensors file, a state dict, or timm's hub when asked). Every reader raises CheckpointError."""
from decathlon.checkpoints.errors import CheckpointError
from decathlon.checkpoints.foreign import TIMM_HUB, read_weight_file
from decathlon.checkpoints.importers import IMPORTED_JOB_KIND, import_backbone, import_spottune
from decathlon.checkpoints.legacy_globals import RefusedContent
from decathlon.checkpoints.legacy_pickle import read_legacy_torch
from decathlon.checkpoints.ours import (CHECKPOINT_FORMAT, arch_record, backbone_checkpoint, check_resumable,
                                        imported_source, load_backbone, load_checkpoint, save_atomic, save_backbone)
from decathlon.checkpoints.public import public_backbone_state, public_spottune_state

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "IMPORTED_JOB_KIND", "RefusedContent", "TIMM_HUB", "arch_record",
           "backbone_checkpoint", "check_resumable", "import_backbone", "import_spottune", "imported_source",
           "load_backbone", "load_checkpoint", "public_backbone_state", "public_spottune_state", "read_legacy_torch",
           "read_weight_file", "save_atomic", "save_backbone"]
