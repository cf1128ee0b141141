"""Session fixtures: a tiny synthetic decathlon, prepared through the real code path.

(pytest runs with --import-mode=importlib: helpers are handed out as fixtures.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# The public test labels (real data), in the shared/ folder beside the checkout.
LABELS_TEST_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "labels_test.zip"

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


@pytest.fixture(scope="session")
def labels_test_zip() -> Path:
    assert LABELS_TEST_ZIP.is_file(), f"{LABELS_TEST_ZIP}: the public test labels are missing"
    return LABELS_TEST_ZIP


@pytest.fixture(scope="session")
def public_test_labels(labels_test_zip) -> dict:
    """read_labelled_annotations of labels_test.zip, read once per session."""
    from decathlon.annotations import read_labelled_annotations

    return read_labelled_annotations(labels_test_zip)


@pytest.fixture(scope="session")
def corrupt_predictions(public_test_labels):
    """corrupt(fraction_of, domains, seed) -> (predictions, accuracies): the true test labels
    with round(n * fraction) of them per domain changed to another class."""
    from decathlon.domains import PAPER_ORDER, get_domain

    def corrupt(fraction_of, domains=PAPER_ORDER, seed=0):
        rng = np.random.default_rng(seed)
        predictions, accuracy = {}, {}
        for name in domains:
            ann = public_test_labels[(name, "test")]
            n, wrong = len(ann.labels), round(len(ann.labels) * fraction_of[name])
            labels = ann.labels.copy()
            flip = rng.choice(n, wrong, replace=False)
            labels[flip] = (labels[flip] + 1) % get_domain(name).num_classes
            predictions[name], accuracy[name] = (ann.image_ids, labels), (n - wrong) / n
        return predictions, accuracy
    return corrupt
