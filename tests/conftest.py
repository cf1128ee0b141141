"""Session fixtures: a tiny synthetic decathlon, prepared through the real code path.

(pytest runs with --import-mode=importlib: helpers are handed out as fixtures.)
"""
from __future__ import annotations

from pathlib import Path

import pytest

TINY_DOMAINS = ("imagenet12", "dtd", "svhn")
TINY_WIDTH = 0.125
# Small enough for seconds-long jobs: every split keeps a few images per class.
TINY_SCALE = 0.06


@pytest.fixture(scope="session")
def tiny_decathlon(tmp_path_factory) -> Path:
    """Prepared shards of three synthetic domains (test labels attached); returns the folder."""
    from data_prep.prepare import prepare
    from data_prep.synthetic import generate

    root = tmp_path_factory.mktemp("tiny-decathlon")
    source = generate(root / "source", seed=0, scale=TINY_SCALE, domains=TINY_DOMAINS, workers=1)
    out = root / "shards"
    prepare(source, out, domains=TINY_DOMAINS, test_labels=root / "source" / "labels_test.zip", workers=1,
            progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_hparams():
    """Overrides that make every job a few seconds long on a CPU."""
    return {"width": TINY_WIDTH, "epochs": 2, "batch_size": 16, "eval_batch_size": 64, "lr_milestones": [1]}


@pytest.fixture(scope="session")
def tiny_backbone(tiny_decathlon, tiny_hparams, tmp_path_factory) -> Path:
    """A backbone pretrained for two epochs on the tiny imagenet12."""
    from decathlon.engine.pretrain import pretrain

    out = tmp_path_factory.mktemp("pretrain")
    return pretrain(tiny_decathlon, out, "cpu_demo", tiny_hparams, device="cpu", progress=False)
