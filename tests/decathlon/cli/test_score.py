"""`python -m decathlon score` on the real test labels: text and JSON output, exit codes."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from decathlon.cli import build_parser, main
from decathlon.data import PAPER_ORDER
from decathlon.scoring import results_entries, write_results

FRACTION_WRONG = {name: (i + 1) / 40 for i, name in enumerate(PAPER_ORDER)}


@pytest.fixture(scope="module")
def corrupted(corrupt_predictions, tmp_path_factory):
    """results.json with round(n * FRACTION_WRONG) wrong labels per domain, and the
    accuracies that must come out."""
    predictions, accuracy = corrupt_predictions(FRACTION_WRONG, seed=1)
    path = write_results(predictions, tmp_path_factory.mktemp("cli") / "results.json")
    return path, predictions, accuracy


@pytest.fixture(scope="module")
def two_domain_labels(labels_test_zip, tmp_path_factory):
    """A folder holding only the real dtd and svhn test label files."""
    folder = tmp_path_factory.mktemp("labels")
    with zipfile.ZipFile(labels_test_zip) as archive:
        for name in ("dtd_test.json", "svhn_test.json"):
            archive.extract(name, folder)
    return folder


def test_score_prints_accuracy_in_paper_order_with_s(corrupted, labels_test_zip, capsys):
    path, _, accuracy = corrupted
    assert main(["score", str(path), "--annotations", str(labels_test_zip), "--strict"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in PAPER_ORDER]
    assert [row[0] for row in rows] == list(PAPER_ORDER)
    for row in rows:
        assert row[5] == f"{accuracy[row[0]] * 100:.2f}", row
    assert "missing domains (not scored): none" in out
    assert "S = " in out and "/ 10000 over 10 domain(s) (baseline: published Finetune (test))" in out


def test_score_json_on_a_partial_submission(corrupted, two_domain_labels, tmp_path, capsys):
    _, predictions, accuracy = corrupted
    partial = write_results({d: predictions[d] for d in ("dtd", "svhn")}, tmp_path / "results.json")
    assert main(["score", str(partial), "--annotations", str(two_domain_labels), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {d: r["accuracy"] for d, r in report["domains"].items()} == {d: accuracy[d] for d in ("dtd", "svhn")}
    assert report["domains"]["dtd"]["images"] == 1880 and report["complete"] is True
    assert report["missing_domains"] == [d for d in PAPER_ORDER if d not in ("dtd", "svhn")]
    assert report["total"] == pytest.approx(sum(r["points"] for r in report["domains"].values()))
    assert report["baseline"] == "published Finetune (test)" and report["split"] == "test"


def test_score_lists_domains_without_predictions(corrupted, two_domain_labels, tmp_path, capsys):
    _, predictions, _ = corrupted
    only_dtd = write_results({"dtd": predictions["dtd"]}, tmp_path / "results.json")
    assert main(["score", str(only_dtd), "--annotations", str(two_domain_labels), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["domains"]["svhn"]["accuracy"] is None and report["domains"]["svhn"]["predicted"] == 0
    assert "svhn" in report["missing_domains"] and report["complete"] is False


@pytest.mark.parametrize("problem", ["duplicate", "no_file", "bad_annotations", "strict"])
def test_bad_input_exits_2_with_a_clean_message(problem, corrupted, two_domain_labels, tmp_path, capsys):
    _, predictions, _ = corrupted
    results, annotations = tmp_path / "results.json", two_domain_labels
    entries = results_entries({"dtd": predictions["dtd"]})
    if problem == "duplicate":
        entries[5]["image_id"] = entries[4]["image_id"]
    results.write_text(json.dumps(entries))
    if problem == "no_file":
        results = tmp_path / "absent.json"
    if problem == "bad_annotations":
        annotations = tmp_path
    args = ["score", str(results), "--annotations", str(annotations)] + (["--strict"] if problem == "strict" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("decathlon score: error: ") and "Traceback" not in err
    expected = {"duplicate": r"entry [5]: field 'image_id'", "no_file": "not found",
                "bad_annotations": "no labelled", "strict": "svhn: 26032 missing"}[problem]
    assert expected in err


def test_module_entry_point_runs(corrupted, two_domain_labels, tmp_path):
    _, predictions, _ = corrupted
    results = write_results({"dtd": predictions["dtd"]}, tmp_path / "results.json")
    done = subprocess.run([sys.executable, "-m", "decathlon", "score", str(results),
                           "--annotations", str(two_domain_labels), "--split", "val"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "no labelled val annotations" in done.stderr
    assert "score" in build_parser().format_help()


def test_test_split_needs_no_annotations_argument(corrupted, capsys):
    path, _, accuracy = corrupted
    assert main(["score", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["annotations"].endswith("decathlon/resources/labels_test.zip") and report["complete"]
    assert report["domains"]["dtd"]["accuracy"] == pytest.approx(accuracy["dtd"])
    assert main(["score", str(path), "--split", "val"]) == 2
    assert "--annotations is needed for the val split" in capsys.readouterr().err


def test_console_command_is_the_module_entry_point():
    """The `decathlon` command setup.cfg installs beside this interpreter."""
    command = Path(sys.executable).parent / "decathlon"
    assert command.is_file(), f"{command}: not installed (pip install -e . installs it)"
    as_command = subprocess.run([str(command), "score", "--help"], capture_output=True, text=True)
    as_module = subprocess.run([sys.executable, "-m", "decathlon", "score", "--help"], capture_output=True, text=True)
    assert as_command.returncode == as_module.returncode == 0
    assert as_command.stdout == as_module.stdout and "usage: decathlon score" in as_command.stdout


def _one_entry(predictions):
    return json.dumps(results_entries({"dtd": (predictions["dtd"][0][:1], predictions["dtd"][1][:1])}))


def _lying_zip(path, payload: bytes, claimed: int):
    """A zip whose headers say its member inflates to `claimed` bytes (it inflates to more)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("results.json", payload)
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):   # local header, central directory
        at = data.index(signature)
        data[at + offset:at + offset + 4] = claimed.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("problem", ["nested", "bomb", "lying_header", "large_plain", "nested_baseline",
                                     "bad_baseline"])
def test_hostile_results_are_one_line_naming_the_file(problem, corrupted, two_domain_labels, tmp_path, capsys):
    from decathlon.scoring.results_file import MAX_RESULTS_BYTES

    _, predictions, _ = corrupted
    results, extra = tmp_path / "results.json", []
    entry = _one_entry(predictions)
    padded = (entry[:-1] + " " * MAX_RESULTS_BYTES + "]").encode()   # valid JSON, one entry, too large
    if problem == "nested":
        results.write_text("[" * 100_000 + "]" * 100_000)
    elif problem == "bomb":
        results = tmp_path / "results.zip"
        with zipfile.ZipFile(results, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("results.json", padded)
        assert results.stat().st_size < MAX_RESULTS_BYTES // 100
    elif problem == "lying_header":
        results = _lying_zip(tmp_path / "results.zip", entry.encode() + b" " * 10_000, claimed=len(entry))
    elif problem == "large_plain":
        results.write_bytes(padded)
    else:
        results.write_text(entry)
        baseline = tmp_path / "baseline.json"
        baseline.write_text("[" * 100_000 + "]" * 100_000 if problem == "nested_baseline" else "{")
        extra = ["--baseline-errors", str(baseline)]
    assert main(["score", str(results), "--annotations", str(two_domain_labels), *extra]) == 2
    err = capsys.readouterr().err
    named = extra[-1] if extra else str(results)
    assert err.startswith(f"decathlon score: error: {named}: ") and err.count("\n") == 1
    expected = {"nested": "nested too deeply", "bomb": "inflates to", "lying_header": "cannot read the zip",
                "large_plain": "more than the", "nested_baseline": "nested too deeply",
                "bad_baseline": "not valid JSON"}[problem]
    assert expected in err


def test_the_size_limit_leaves_room_for_any_full_submission():
    from decathlon.data.domains import TOTAL_TEST_IMAGES
    from decathlon.data import DOMAIN_NAMES, get_domain
    from decathlon.scoring.results_file import MAX_RESULTS_BYTES

    largest = max(get_domain(d).category_id_of(get_domain(d).num_classes - 1) for d in DOMAIN_NAMES)
    entry = json.dumps([{"image_id": largest, "category_id": largest}], indent=4)   # the roomiest layout
    assert TOTAL_TEST_IMAGES * len(entry) * 2 < MAX_RESULTS_BYTES
