"""results.json: writer, validator and local evaluator (the last on the real test labels)."""
import json

import numpy as np
import pytest

from decathlon.scoring import (ResultsError, evaluate, official_test_ids, read_results, results_entries, s_score,
                               submission, validate_results, write_results)
from decathlon.data.domains import TOTAL_TEST_IMAGES
from decathlon.data import PAPER_ORDER, get_domain



def small_predictions():
    """Three dtd and two svhn test images with valid 0-based labels."""
    ids = official_test_ids(["dtd", "svhn"])
    return {"dtd": (ids["dtd"][:3], np.array([0, 46, 5])), "svhn": (ids["svhn"][:2], np.array([9, 0]))}


@pytest.mark.parametrize("name", ["results.json", "results.zip"])
def test_writer_round_trip(tmp_path, name):
    path = write_results(small_predictions(), tmp_path / name)
    checked = validate_results(path)
    dtd, svhn = get_domain("dtd"), get_domain("svhn")
    assert checked.category_ids.tolist() == [dtd.category_id_of(c) for c in (0, 46, 5)] + \
        [svhn.category_id_of(c) for c in (9, 0)]
    assert checked.coverage["submitted"].to_dict() == {"dtd": 3, "svhn": 2}
    assert read_results(path) == results_entries(small_predictions())
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_writer_leaves_no_temp_file_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(submission.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_results(small_predictions(), target)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    assert target.read_text() == "old"


def test_writer_refuses_bad_predictions_before_writing(tmp_path):
    ids = official_test_ids(["dtd"])["dtd"][:2]
    with pytest.raises(ResultsError, match="out of range"):
        write_results({"dtd": (ids, np.array([0, 47]))}, tmp_path / "results.json")
    with pytest.raises(ResultsError, match="integer arrays"):
        write_results({"dtd": (ids, np.array([0.0, 1.0]))}, tmp_path / "results.json")
    assert list(tmp_path.iterdir()) == []


def defective(change):
    entries = results_entries(small_predictions())
    change(entries)
    return entries


@pytest.mark.parametrize("change, message", [
    (lambda e: e[2].update(image_id=e[0]["image_id"]), r"entry \[2\]: field 'image_id' \d+ duplicates entry \[0\]"),
    (lambda e: e[2].update(category_id=80000001),
     r"entry \[2\] \(image_id \d+, dtd\): field 'category_id' 80000001 is not a category of dtd"),
    (lambda e: e[4].update(category_id=80000011),
     r"entry \[4\] \(image_id \d+, svhn\): field 'category_id' 80000011 out of range 80000001..80000010"),
    (lambda e: e[0].update(category_id=40000001.0), r"entry \[0\] .*field 'category_id' is 40000001.0 \(float\)"),
    (lambda e: e[1].update(image_id=str(e[1]["image_id"])), r"entry \[1\]: field 'image_id' is '\d+' \(str\)"),
    (lambda e: e[1].update(image_id=True), r"entry \[1\]: field 'image_id' is True \(bool\)"),
    (lambda e: e[2].update(score=0.9), r"entry \[2\]: unexpected field 'score'"),
    (lambda e: e[2].pop("category_id"), r"entry \[2\]: field 'category_id' missing"),
    (lambda e: e.__setitem__(1, [1, 2]), r"entry \[1\]: expected an object"),
    (lambda e: e[0].update(image_id=123), r"entry \[0\]: field 'image_id' 123 does not start with a domain index"),
])
def test_validator_names_entry_and_field_of_each_defect(change, message):
    with pytest.raises(ResultsError, match=message):
        validate_results(defective(change))


def test_validator_errors_name_the_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(defective(lambda e: e[4].update(category_id=1))))
    with pytest.raises(ResultsError, match=rf"{path}: entry \[4\]"):
        validate_results(path)
    path.write_text("[{")
    with pytest.raises(ResultsError, match=rf"{path}: not valid JSON"):
        validate_results(path)
    with pytest.raises(ResultsError, match="not found"):
        validate_results(tmp_path / "absent.json")
    with pytest.raises(ResultsError, match="non-empty JSON list"):
        validate_results({"image_id": 1})


def test_coverage_strict_and_partial():
    entries = results_entries(small_predictions())
    expected = official_test_ids(["dtd", "svhn", "aircraft"])
    with pytest.raises(ResultsError, match="aircraft: 3333 missing, 0 unexpected of 3333; "
                                          "dtd: 1877 missing.*svhn: 26030 missing"):
        validate_results(entries, expected, require_full=True)
    partial = validate_results(entries, expected, require_full=False)
    assert not partial.complete
    assert partial.missing_domains == ("aircraft",)
    assert partial.coverage.loc["dtd"].to_dict() == {"submitted": 3, "expected": 1880, "missing": 1877}
    counts = validate_results(entries, {"dtd": 3, "svhn": 2}, require_full=True)
    assert counts.complete


def test_unexpected_ids_fail_even_when_partial():
    entries = results_entries(small_predictions())
    entries[1]["image_id"] -= 1880  # a dtd val id
    with pytest.raises(ResultsError, match=r"entry \[1\]: field 'image_id' \d+ is not an expected id"
                                          r".*dtd: .* 1 unexpected"):
        validate_results(entries, official_test_ids(["dtd", "svhn"]), require_full=False)
    with pytest.raises(ResultsError, match="svhn: 0 missing, 2 unexpected of 0"):
        validate_results(results_entries(small_predictions()), {"dtd": 3}, require_full=False)


@pytest.fixture
def labelled(public_test_labels):
    return public_test_labels


def test_official_test_ids_match_the_real_labels(labelled):
    for (name, split), ann in labelled.items():
        assert np.array_equal(np.sort(ann.image_ids), official_test_ids([name])[name]), name


def test_true_labels_score_100_percent_and_10000(labelled, tmp_path):
    truth = {name: (ann.image_ids, ann.labels) for (name, _), ann in labelled.items()}
    path = write_results(truth, tmp_path / "results.json")
    checked = validate_results(path, official_test_ids(), require_full=True)
    assert len(checked.image_ids) == TOTAL_TEST_IMAGES == 139_760 and checked.complete
    evaluation = evaluate(path, labelled, require_full=True)
    assert evaluation.accuracy == {name: 1.0 for name in PAPER_ORDER}
    assert evaluation.score.total == 10_000.0 and evaluation.score.missing == ()


def test_corrupted_labels_give_exactly_the_expected_accuracies(labelled, corrupt_predictions):
    fractions = {name: (i + 1) / 25 for i, name in enumerate(PAPER_ORDER)}
    predictions, expected = corrupt_predictions(fractions)
    evaluation = evaluate(results_entries(predictions), labelled, require_full=True)
    assert evaluation.accuracy == expected
    assert evaluation.score.total == pytest.approx(s_score(expected).total)
    assert evaluation.table["points"].to_dict() == pytest.approx(s_score(expected).per_domain)


def test_partial_results_score_present_domains_and_report_missing_ones(labelled, corrupt_predictions):
    predictions, expected = corrupt_predictions({"dtd": 0.5, "svhn": 0.0}, domains=["dtd", "svhn"])
    ids, labels = predictions["dtd"]
    predictions["dtd"] = (ids[:940], labels[:940])  # half the dtd images unpredicted: wrong
    evaluation = evaluate(results_entries(predictions), labelled)
    assert evaluation.accuracy["svhn"] == 1.0
    assert evaluation.accuracy["dtd"] == (labels[:940] == labelled[("dtd", "test")].labels[:940]).sum() / 1880
    assert evaluation.score.missing == tuple(d for d in PAPER_ORDER if d not in ("dtd", "svhn"))
    with pytest.raises(ResultsError, match="dtd: 940 missing"):
        evaluate(results_entries(predictions), labelled, require_full=True)


def test_other_splits_need_their_annotations_and_a_baseline(labelled, corrupt_predictions):
    with pytest.raises(ResultsError, match="no labelled val annotations"):
        evaluate(results_entries(small_predictions()), labelled, split="val")
    predictions, _ = corrupt_predictions({"dtd": 0.0}, domains=["dtd"])
    own = evaluate(results_entries(predictions), labelled, baseline_errors={"dtd": 0.5})
    assert own.score.baseline == "custom" and own.score.total == 1000.0
