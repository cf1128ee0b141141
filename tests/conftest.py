"""Session fixtures: a tiny synthetic decathlon, prepared through the real code path.

(pytest runs with --import-mode=importlib: helpers are handed out as fixtures.)
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHECKOUT = Path(__file__).resolve().parents[1]

# `make test` runs the suite on two pytest-xdist workers per core count (`-n auto`): each
# worker, and every process its tests start, then uses one thread, so that the workers share
# the cores instead of fighting over them (set before any test imports torch).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def nothing_opened_beside_the_checkout():
    """Fail the session if any test opened a file in the checkout's parent folder but
    outside the checkout (a user's clone has nothing beside it); temporary files and the
    Python installation (a virtual environment may live beside the checkout) aside."""
    outside, watching = [], [True]
    parent = CHECKOUT.parent
    allowed = {Path(tempfile.gettempdir()).resolve(), CHECKOUT,
               *(Path(p).resolve() for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})}

    def watch(event, args):
        if watching[0] and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
            path = Path(args[0].decode() if isinstance(args[0], bytes) else args[0]).absolute()
            if path.is_relative_to(parent) and not any(path.is_relative_to(root) for root in allowed):
                outside.append(str(path))

    sys.addaudithook(watch)  # audit hooks cannot be removed: the flag ends the watch
    yield
    watching[0] = False
    assert not outside, f"tests opened files outside the checkout: {sorted(set(outside))[:5]}"


TINY_DOMAINS = ("imagenet12", "dtd", "svhn")
TINY_WIDTH = 0.125
# Small enough for seconds-long jobs: every split keeps a few images per class.
TINY_SCALE = 0.06


@pytest.fixture(scope="session")
def tiny_decathlon(tmp_path_factory) -> Path:
    """Prepared shards of three synthetic domains (test labels attached); returns the folder."""
    from data_prep import prepare
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
    from decathlon.benchmark import pretrain_hparams
    from decathlon.engine import pretrain

    out = tmp_path_factory.mktemp("pretrain")
    return pretrain(tiny_decathlon, out, pretrain_hparams("cpu_demo", tiny_hparams), {"preset": "cpu_demo"},
                    device="cpu", progress=False)


@pytest.fixture(scope="session")
def labels_test_zip() -> Path:
    """The public test labels (real data) the package ships, sha256-checked."""
    from decathlon.resources import labels_test_zip

    return labels_test_zip()


@pytest.fixture(scope="session")
def public_test_labels(labels_test_zip) -> dict:
    """read_labelled_annotations of labels_test.zip, read once per session."""
    from decathlon.data import read_labelled_annotations

    return read_labelled_annotations(labels_test_zip)


@pytest.fixture(scope="session")
def corrupt_predictions(public_test_labels):
    """corrupt(fraction_of, domains, seed) -> (predictions, accuracies): the true test labels
    with round(n * fraction) of them per domain changed to another class."""
    from decathlon.data import PAPER_ORDER, get_domain

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
