"""The published weights as our files (`decathlon import-backbone`, `import-spottune`).

* `import_backbone(source, out)`: the residual-adapter authors' `resnet26_pretrained.t7`
  -> our `backbone.pt` (ResNet-26, width 1, its 1000-way imagenet12 classifier kept),
  recording the source file (name, sha256, 'imported', and the 'acc'/'epoch' it holds).
* `import_spottune(source, domain, backbone, out)`: SpotTune's `cv/<domain>/<domain>.t7`
  -> a job folder holding `spottune_domain.pt` (exactly what a SpotTune job exports) and
  `imported.json`, the record `assemble_spottune` reads where a trained job has
  `final.json` (settings: backbone, width, policy, temperature; plus provenance). Such
  a folder has no `done` marker nor predictions: `collect` does not count it as a job.

Both read the public files with `public_format` (architecture checks, no code run).
"""
from __future__ import annotations

import json
from pathlib import Path

from decathlon.data import SOURCE_DOMAIN
from decathlon.checkpoints.ours import (CheckpointError, imported_source, load_backbone, save_atomic,
                                         save_backbone)
from decathlon.checkpoints.public import BACKBONE_CLASSES, public_backbone_state, public_spottune_state
from decathlon.files import write_bytes_atomic
from decathlon.jobdir import DOMAIN_FILE, FINAL_FILE, IMPORTED_JOB_FILE
from decathlon.models import GUMBEL_TEMPERATURE, resnet26

IMPORTED_JOB_KIND = "imported_spottune"


def import_backbone(source, out) -> dict:
    """Write our backbone.pt at `out` from the public pretrained ResNet-26; returns the
    source record stored in it."""
    source = Path(source)
    state, recorded = public_backbone_state(source)
    net = resnet26(BACKBONE_CLASSES)
    net.load_state_dict(state)
    record = imported_source(source, recorded)
    save_backbone(net, 1.0, Path(out), domain=SOURCE_DOMAIN, source=record)
    return record


def import_spottune(source, domain: str, backbone, out) -> dict:
    """Write the job folder `out` from SpotTune's checkpoint of `domain`, trained on
    `backbone` (our backbone.pt or the public .t7); returns the imported.json record."""
    out = Path(out)
    if (out / FINAL_FILE).exists():
        raise CheckpointError(f"{out}: a trained job's folder (it has final.json); import into another folder")
    ckpt = load_backbone(backbone, 1.0)
    state = public_spottune_state(source, domain, ckpt["state"])
    save_atomic(state, out / DOMAIN_FILE)
    record = {"kind": IMPORTED_JOB_KIND, "method": "spottune", "domain": domain,
              "num_classes": state["_extra_state"]["num_classes"],
              "backbone": str(Path(backbone).resolve()), "backbone_provenance": ckpt["provenance"],
              "width": 1.0, "policy": "per_domain", "temperature": GUMBEL_TEMPERATURE,
              "source": imported_source(source, {})}
    write_bytes_atomic(out / IMPORTED_JOB_FILE, json.dumps(record, indent=2) + "\n")
    return record
