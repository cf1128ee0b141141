"""results.json, the evaluation server's submission file: write it, check it, score it.

The file is one JSON list `[{"image_id": int, "category_id": int}, ...]` with the full
offset category id (`d * 10**7 + label + 1`); a full submission covers all 139,760 test
images. The server is strict and its messages are terse, so every entry is checked here
first and errors name the file, the entry index and the field. Files are read by
`results_file.read_results` (size-limited, see there).
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from decathlon.data import DOMAIN_NAMES, Domain, PAPER_ORDER, get_domain, read_labelled_annotations
from decathlon.files import write_bytes_atomic
from decathlon.data.domains import ID_DOMAIN_FACTOR, ID_SPLIT_FACTOR, SPLIT_INDEX
from decathlon.scoring.results_file import RESULTS_MEMBER, ResultsError, read_results
from decathlon.scoring.score import SScore, s_score

FIELDS = ("image_id", "category_id")
_DOMAIN_BY_INDEX = {get_domain(name).index: get_domain(name) for name in DOMAIN_NAMES}


def official_test_ids(domains=DOMAIN_NAMES) -> dict:
    """{domain: test image ids}: d*10**7 + 2*10**5 + k, k running on after train and val."""
    ids = {}
    for name in domains:
        domain = get_domain(name)
        first = (domain.category_offset + SPLIT_INDEX["test"] * ID_SPLIT_FACTOR
                 + domain.sizes["train"] + domain.sizes["val"] + 1)
        ids[name] = np.arange(first, first + domain.sizes["test"], dtype=np.int64)
    return ids


def results_entries(predictions: dict) -> list:
    """{domain: (image_ids, labels)} with 0-based labels -> the server's list of entries."""
    entries = []
    for name, (image_ids, labels) in predictions.items():
        domain = get_domain(name)
        image_ids, labels = np.asarray(image_ids), np.asarray(labels)
        if image_ids.shape != labels.shape or image_ids.ndim != 1:
            raise ResultsError(f"{name}: image_ids {image_ids.shape} and labels {labels.shape} "
                               "must be 1-D arrays of one length")
        if not (np.issubdtype(image_ids.dtype, np.integer) and np.issubdtype(labels.dtype, np.integer)):
            raise ResultsError(f"{name}: image_ids ({image_ids.dtype}) and labels ({labels.dtype}) "
                               "must be integer arrays")
        entries += [{"image_id": int(i), "category_id": domain.category_id_of(int(c))}
                    for i, c in zip(image_ids, labels)]
    return entries


def write_results(predictions: dict, path) -> Path:
    """Check and write {domain: (image_ids, labels)} as results.json, or as a zip holding
    it when `path` ends in .zip (ready to upload). Atomic: a temporary file in the same
    folder is renamed over `path` only once complete."""
    path = Path(path)
    entries = results_entries(predictions)
    validate_results(entries)
    payload = json.dumps(entries, separators=(",", ":")).encode()
    if path.suffix == ".zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(RESULTS_MEMBER, payload)
        payload = buffer.getvalue()
    return write_bytes_atomic(path, payload)


@dataclass(frozen=True)
class ValidatedResults:
    source: str
    image_ids: np.ndarray       # int64, in entry order
    category_ids: np.ndarray    # int64, full offset ids
    coverage: pd.DataFrame      # per domain (paper order): submitted, expected, missing

    @property
    def missing_domains(self) -> tuple:
        """Expected domains without a single entry."""
        table = self.coverage
        return tuple(table.index[(table["submitted"] == 0) & (table["expected"] > 0)])

    @property
    def complete(self) -> bool:
        """No expected id missing (always true when nothing was expected)."""
        return bool((self.coverage["missing"] == 0).all())


def _int_defect(value, field: str) -> str | None:
    if type(value) is int:  # bool and float are refused, as in JSON the server refuses them
        return None
    return f"field '{field}' is {value!r} ({type(value).__name__}), expected an integer"


def _entry_defect(entry) -> str | None:
    """What is wrong with one entry (None if nothing): fields, domain, category range.

    Returns a message instead of raising so that the happy path, run 139,760 times,
    builds no strings."""
    if not isinstance(entry, dict):
        return f": expected an object {{\"image_id\": int, \"category_id\": int}}, got {type(entry).__name__}"
    if len(entry) != 2 or "image_id" not in entry or "category_id" not in entry:
        absent, extra = [f for f in FIELDS if f not in entry], sorted(set(entry) - set(FIELDS))
        problem = f"field '{absent[0]}' missing" if absent else f"unexpected field '{extra[0]}'"
        return f": {problem} (entries have exactly 'image_id' and 'category_id')"
    image_id, category_id = entry["image_id"], entry["category_id"]
    defect = _int_defect(image_id, "image_id")
    if defect:
        return f": {defect}"
    domain = _DOMAIN_BY_INDEX.get(image_id // ID_DOMAIN_FACTOR) if image_id > 0 else None
    if domain is None:
        return f": field 'image_id' {image_id} does not start with a domain index 1..10"
    defect = _int_defect(category_id, "category_id")
    if defect is None and 0 <= category_id - domain.category_offset - 1 < domain.num_classes:
        return None
    where = f" (image_id {image_id}, {domain.name})"
    if defect:
        return f"{where}: {defect}"
    if category_id // ID_DOMAIN_FACTOR != domain.index:
        return f"{where}: field 'category_id' {category_id} is not a category of {domain.name} " \
               f"(expected {_category_range(domain)})"
    return f"{where}: field 'category_id' {category_id} out of range {_category_range(domain)}"


def _category_range(domain: Domain) -> str:
    return f"{domain.category_id_of(0)}..{domain.category_id_of(domain.num_classes - 1)}"


def _coverage(image_ids: np.ndarray, expected_ids, source: str, require_full: bool) -> pd.DataFrame:
    """Per-domain counts; unexpected ids always fail, missing ones only under require_full.

    expected_ids maps domain -> its ids, or -> a bare count when only sizes are known;
    None expects nothing in particular (only the submitted domains are listed)."""
    for name in expected_ids or ():
        if name not in DOMAIN_NAMES:
            raise ValueError(f"expected_ids: unknown domain {name!r}; valid: {', '.join(DOMAIN_NAMES)}")
    submitted_domains = image_ids // ID_DOMAIN_FACTOR
    is_unexpected = np.zeros(len(image_ids), bool)  # known only where ids are expected
    rows = {}
    for name in PAPER_ORDER:
        in_domain = submitted_domains == get_domain(name).index
        submitted = image_ids[in_domain]
        expected = len(submitted) if expected_ids is None else expected_ids.get(name, 0)
        if isinstance(expected, (int, np.integer)):
            count = int(expected)
            missing, unexpected = max(0, count - len(submitted)), max(0, len(submitted) - count)
            is_unexpected[in_domain] = count == 0
        else:
            expected = np.asarray(expected, np.int64)
            count = len(expected)
            missing = int(np.setdiff1d(expected, submitted).size)
            is_unexpected[in_domain] = ~np.isin(submitted, expected)
            unexpected = int(is_unexpected[in_domain].sum())
        if len(submitted) or count:
            rows[name] = {"submitted": len(submitted), "expected": count,
                          "missing": missing, "unexpected": unexpected}
    table = pd.DataFrame.from_dict(rows, orient="index",
                                   columns=["submitted", "expected", "missing", "unexpected"])
    failing = table[(table["unexpected"] > 0) | ((table["missing"] > 0) & require_full)]
    if not failing.empty:
        counts = "; ".join(f"{d}: {r.missing} missing, {r.unexpected} unexpected of {r.expected}"
                           for d, r in failing.iterrows())
        mode = "every expected image id exactly once" if require_full else "no unexpected image ids"
        first = np.flatnonzero(is_unexpected)
        entry = (f"entry [{first[0]}]: field 'image_id' {image_ids[first[0]]} is not an expected id; "
                 if len(first) else "")
        raise ResultsError(f"{source}: {entry}coverage ({mode} required): {counts}")
    return table.drop(columns="unexpected")


def validate_results(results, expected_ids: dict | None = None, require_full: bool = True) -> ValidatedResults:
    """Check a results file (path) or list entry by entry; return its ids and coverage.

    Without `expected_ids` only the entries are checked. With it ({domain: ids or count},
    e.g. `official_test_ids()` or ids from labelled annotations) ids outside it are
    errors, and so are missing ones when `require_full`; otherwise they are reported in
    `coverage` (a partial submission, e.g. a subset of domains)."""
    if isinstance(results, (str, os.PathLike)):
        source, entries = str(results), read_results(results)
    else:
        source, entries = "results", results
    if not isinstance(entries, list) or not entries:
        raise ResultsError(f"{source}: expected a non-empty JSON list of "
                           "{\"image_id\": int, \"category_id\": int} objects")
    first_seen = {}
    for i, entry in enumerate(entries):
        defect = _entry_defect(entry)
        if defect:
            raise ResultsError(f"{source}: entry [{i}]{defect}")
        earlier = first_seen.setdefault(entry["image_id"], i)
        if earlier != i:
            raise ResultsError(f"{source}: entry [{i}]: field 'image_id' {entry['image_id']} "
                               f"duplicates entry [{earlier}]")
    image_ids = np.fromiter((e["image_id"] for e in entries), np.int64, len(entries))
    category_ids = np.fromiter((e["category_id"] for e in entries), np.int64, len(entries))
    coverage = _coverage(image_ids, expected_ids, source, require_full)
    return ValidatedResults(source, image_ids, category_ids, coverage)


@dataclass(frozen=True)
class Evaluation:
    split: str
    table: pd.DataFrame         # per labelled domain: images, predicted, correct, accuracy, points
    score: SScore | None        # None when no baseline applies (a non-test split without one)
    results: ValidatedResults

    @property
    def accuracy(self) -> dict:
        """{domain: top-1 accuracy fraction} for the domains with predictions."""
        return self.table["accuracy"].dropna().to_dict()


def evaluate(results, labelled, split: str = "test", baseline_errors: dict | None = None,
             require_full: bool = False) -> Evaluation:
    """Score results (path, list) against labelled annotations: {(domain, split):
    SplitAnnotations} as `read_labelled_annotations` returns, or the folder or zip to read.

    A domain's accuracy counts its unpredicted images as wrong; domains without any
    prediction get no accuracy and are listed as missing in the score. S uses the
    published Finetune baseline on the test split, `baseline_errors` when given."""
    if isinstance(labelled, (str, os.PathLike)):
        labelled = read_labelled_annotations(labelled)
    truth = {domain: ann for (domain, ann_split), ann in labelled.items() if ann_split == split}
    if not truth:
        raise ResultsError(f"no labelled {split} annotations given "
                           f"(have: {', '.join(sorted(f'{d}_{s}' for d, s in labelled)) or 'none'})")
    unlabelled = [d for d, ann in truth.items() if not ann.labels_known]
    if unlabelled:
        raise ResultsError(f"{split} annotations without labels: {', '.join(unlabelled)}")
    checked = validate_results(results, {d: ann.image_ids for d, ann in truth.items()}, require_full)
    rows = {}
    for name in (d for d in PAPER_ORDER if d in truth):
        ann, domain = truth[name], get_domain(name)
        order = np.argsort(ann.image_ids)
        in_domain = checked.image_ids // ID_DOMAIN_FACTOR == domain.index
        position = order[np.searchsorted(ann.image_ids[order], checked.image_ids[in_domain])]
        predicted = checked.category_ids[in_domain] - domain.category_offset - 1
        correct = int((ann.labels[position] == predicted).sum())
        rows[name] = {"images": len(ann.image_ids), "predicted": int(in_domain.sum()), "correct": correct,
                      "accuracy": correct / len(ann.image_ids) if in_domain.any() else np.nan}
    table = pd.DataFrame.from_dict(rows, orient="index")
    score = None
    if split == "test" or baseline_errors is not None:
        score = s_score(table["accuracy"].dropna().to_dict(), baseline_errors=baseline_errors)
    table["points"] = pd.Series(score.per_domain if score is not None else {}, dtype=float)
    return Evaluation(split, table, score, checked)
