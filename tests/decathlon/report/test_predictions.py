"""A finished job whose predictions file is missing or damaged is incomplete, said so, and
never silently drops its domain from a submission (`write_run`: this folder's conftest)."""
import numpy as np
import pytest

from decathlon.cli import main
from decathlon.report import collect, write_submissions
from decathlon.scoring import official_test_ids, validate_results

JOB = ("jobs", "cpu_demo-train", "finetune", "dtd", "seed0")


def _damage(file, how):
    if how == "missing":
        file.unlink()
    elif how == "truncated":
        file.write_bytes(file.read_bytes()[:100])
    elif how == "garbage":
        file.write_bytes(b"not an npz at all" * 8)
    elif how == "single_array":
        with open(file, "wb") as f:
            np.save(f, np.arange(3))


@pytest.mark.parametrize("how", ["missing", "truncated", "garbage", "single_array"])
def test_a_done_job_without_readable_predictions_is_incomplete_and_named(how, tmp_path, write_run):
    run = write_run(tmp_path)
    job = run.joinpath(*JOB)
    _damage(job / "predictions_test.npz", how)
    collection = collect(run)
    assert len(collection.jobs) == 8 and str(job) not in set(collection.jobs["path"])
    row = collection.incomplete[collection.incomplete["path"] == str(job)]
    assert row[["method", "domain"]].values.tolist() == [["finetune", "dtd"]]
    reason = row["reason"].iloc[0]
    assert reason.startswith("done, but predictions_test.npz: ") and "\n" not in reason
    assert ("predictions file missing" if how == "missing" else "cannot read the predictions") in reason


def test_the_cli_counts_it_incomplete_and_the_submission_names_the_missing_domain(tmp_path, write_run, capsys):
    run = write_run(tmp_path)
    job = run.joinpath(*JOB)
    _damage(job / "predictions_test.npz", "truncated")
    assert main(["collect", str(run), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "8 finished job(s), 2 incomplete" in printed
    assert f"- `{job}` (finetune on dtd): done, but predictions_test.npz: cannot read the predictions" in printed
    line = next(line for line in printed.splitlines() if "results_finetune_seed0.json" in line)
    assert f"no predictions for aircraft, cifar100, daimlerpedcls, dtd (job incomplete: {job})," in line
    checked = validate_results(tmp_path / "out" / "submissions" / "synthetic-cpu_demo-train" /
                               "results_finetune_seed0.json")
    assert set(checked.coverage.index) == {"imagenet12", "svhn"}


def test_a_real_submission_lacking_a_domain_is_named_partial(tmp_path, write_run):
    run = write_run(tmp_path, synthetic=False)
    official = official_test_ids(["imagenet12", "svhn"])
    for folder, domain in ((run / "pretrain" / "cpu_demo-seed0", "imagenet12"),
                           (run.joinpath(*JOB[:3], "svhn", "seed0"), "svhn")):
        np.savez(folder / "predictions_test.npz", image_ids=official[domain], labels=np.zeros_like(official[domain]))
    _damage(run.joinpath(*JOB) / "predictions_test.npz", "missing")
    summary = write_submissions(collect(run), tmp_path / "out").set_index("file")
    row = summary.loc["submissions/cpu_demo-train/results_finetune_seed0.partial.json"]
    assert row["problem"] == "" and not row["complete"] and row["domains"] == 2
    assert f"dtd (job incomplete: {run.joinpath(*JOB)})" in row["missing"]
    assert row["missing"].count(",") == 7   # the eight domains other than imagenet12 and svhn
    assert not (tmp_path / "out" / "submissions" / "cpu_demo-train" / "results_finetune_seed0.json").exists()
    written = validate_results(tmp_path / "out" / row.name, official, require_full=True)
    assert len(written.image_ids) == sum(map(len, official.values()))


def test_a_partial_submission_names_missing_domains_only_when_some_are():
    from types import SimpleNamespace

    from decathlon.report.write import submission_state

    row = SimpleNamespace(problem="", complete=False, domains=10, data="SYNTHETIC", missing="")
    assert submission_state(row) == "partial (10 domain(s), SYNTHETIC data)"
    assert submission_state(SimpleNamespace(**{**vars(row), "domains": 9, "missing": "dtd"})) == \
        "partial (9 domain(s), SYNTHETIC data; no predictions for dtd)"
