"""Collecting results from hand-written job folders (the `write_run` fixture of this
folder's conftest.py): numbers worked by hand, files, CLI."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from decathlon.cli import main
from decathlon.report import CollectError, collect, leaderboards, write_submissions, write_tables
from decathlon.report.tables import shown_seeds
from decathlon.scoring import validate_results

def points(error, baseline_error):
    return 1000 * (1 - error / (2 * baseline_error)) ** 2


def board(collection, split="val"):
    return next(b for b in leaderboards(collection) if b.split == split)


def test_finished_jobs_are_rows_and_unfinished_ones_are_reported(tmp_path, write_run):
    collection = collect([write_run(tmp_path)])
    assert len(collection.jobs) == 9 and set(collection.jobs["method"]) == {"finetune", "spottune", "pretrain"}
    assert collection.jobs.loc[collection.jobs["method"] == "spottune", "eval_policy"].eq("argmax").all()
    assert collection.incomplete[["method", "domain"]].values.tolist() == [["spottune", "svhn"]]
    assert collection.incomplete["reason"].iloc[0] == "unfinished: no done marker (1 epoch(s) recorded)"
    assert len(collection.curves) == 18 and len(collection.policy) == 4 * 2 * 12


def test_mean_and_standard_error_over_seeds_by_hand(tmp_path, write_run):
    table = board(collect(write_run(tmp_path)))
    spottune = "spottune (eval argmax)"
    assert table.methods() == ["finetune", spottune]
    assert table.value(spottune, "dtd") == pytest.approx(65.0)
    assert table.value(spottune, "dtd", "se") == pytest.approx(5.0)      # std(60, 70) / sqrt(2)
    assert table.value(spottune, "svhn", "se") == pytest.approx(3.0)
    assert table.value(spottune, "imagenet12") == pytest.approx(40.0)   # the pretraining job's
    assert table.value(spottune, "mean") == pytest.approx(64.0)          # seeds: 63.33 and 64.67
    assert table.value(spottune, "mean", "se") == pytest.approx(2 / 3)
    assert table.missing_domains == ("aircraft", "cifar100", "daimlerpedcls", "gtsrb", "vgg-flowers",
                                     "omniglot", "ucf101")


def test_s_against_the_runs_own_finetune_baseline_by_hand(tmp_path, write_run):
    table = board(collect(write_run(tmp_path)))
    assert "this run's own finetune val errors" in table.baseline
    assert table.value("finetune", "S") == pytest.approx(750.0)        # 250 per domain, ImNet included
    seed0 = 250 + points(0.40, 0.45) + points(0.10, 0.20)
    seed1 = 250 + points(0.30, 0.45) + points(0.16, 0.20)
    assert table.value("spottune (eval argmax)", "S") == pytest.approx((seed0 + seed1) / 2)
    assert table.value("spottune (eval argmax)", "S", "se") == pytest.approx(abs(seed0 - seed1) / 2)


def test_par_in_resnet26_units_by_hand(tmp_path, write_run):
    table = board(collect(write_run(tmp_path)))
    assert table.value("finetune", "#par") == pytest.approx(1 + 1.0 + 1.0)
    assert table.value("spottune (eval argmax)", "#par") == pytest.approx(((1 + 1.5 + 1.5) + (1 + 1.5 + 1.7)) / 2)


def test_s_is_na_with_a_reason_without_finetune_jobs(tmp_path, write_run):
    collection = collect(write_run(tmp_path, finetune=False))
    table = board(collection)
    assert "S: n/a" in table.baseline and math.isnan(table.value("spottune (eval argmax)", "S"))
    write_tables(collection, tmp_path / "out")
    assert "| n/a |" in (tmp_path / "out" / "leaderboard.md").read_text()


def test_files_say_synthetic_and_are_deterministic(tmp_path, write_run):
    collection = collect(write_run(tmp_path))
    first = write_tables(collection, tmp_path / "a")
    second = write_tables(collect(collection.run_dirs), tmp_path / "b")
    assert [p.name for p in first] == ["leaderboard.md", "leaderboard.tex", "scores.csv"]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
    markdown, latex = first[0].read_text(), first[1].read_text()
    assert "## SYNTHETIC data · preset cpu_demo · protocol train · split val" in markdown
    assert "SYNTHETIC data: top-1 accuracy (%) on the test split" in markdown
    assert "| finetune | 2 | 40.00 |  |  |  | 55.00 ± 0.00 |" in markdown
    assert "65.00 ± 5.00" in markdown and "Missing domains (empty cells, not part of mean or S): Airc, C100" in markdown
    assert "spottune/svhn/seed2" in markdown and "(published)" not in markdown
    finetune_row = next(line for line in markdown.splitlines() if line.startswith("| finetune |"))
    spottune_row = next(line for line in markdown.splitlines() if line.startswith("| spottune (eval argmax) |"))
    assert "| 750 ± 0 | 3.00 |" in finetune_row               # the same size for every seed: no ± 0.00
    assert "| 4.10 ± 0.10 |" in spottune_row                  # 4.0 and 4.2 over the two seeds
    assert shown_seeds("#par", {"se": 1e-17, "n": 3}) == 1 and shown_seeds("#par", {"se": 0.01, "n": 3}) == 3
    assert "\\toprule" in latex and "SYNTHETIC" in latex and "65.00 $\\pm$ 5.00" in latex
    scores = pd.read_csv(first[2])
    assert set(scores["data"]) == {"SYNTHETIC"} and set(scores["split"]) == {"val", "test"}
    row = scores[(scores["split"] == "val") & (scores["method"] == "finetune") & (scores["metric"] == "#par")]
    assert row[["mean", "n"]].values.tolist() == [[3.0, 2]]


def test_real_test_table_has_published_rows_and_baseline(tmp_path, write_run):
    collection = collect(write_run(tmp_path, synthetic=False))
    val, test = board(collection, "val"), board(collection, "test")
    assert "SpotTune (2019) (published)" in test.methods("published")
    assert test.value("SpotTune (2019) (published)", "S") == 3612
    assert "published Finetune test errors" in test.baseline
    assert val.methods("published") == [] and "own finetune" in val.baseline
    markdown = write_tables(collection, tmp_path / "out")[0].read_text()
    assert "real data" in markdown and "SYNTHETIC" not in markdown and "Finetune (published)" in markdown


def test_unlabelled_test_gives_no_test_table(tmp_path, write_run):
    collection = collect(write_run(tmp_path, test_labels=False))
    assert [b.split for b in leaderboards(collection)] == ["val"]


def test_a_run_without_finished_jobs_says_so(tmp_path):
    (tmp_path / "run" / "jobs" / "cpu_demo-train" / "finetune" / "dtd" / "seed0").mkdir(parents=True)
    collection = collect(tmp_path / "run")
    markdown = write_tables(collection, tmp_path / "out")[0].read_text()
    assert "No finished jobs yet." in markdown and "(finetune on dtd): not started" in markdown
    assert write_submissions(collection, tmp_path / "out").empty


def test_unreadable_final_json_is_reported_not_counted(tmp_path, write_run):
    run = write_run(tmp_path)
    (run / "jobs" / "cpu_demo-train" / "finetune" / "dtd" / "seed0" / "final.json").write_text("{")
    collection = collect(run)
    assert len(collection.jobs) == 8
    assert "final.json is not valid JSON" in collection.incomplete["reason"].iloc[0]


def test_submission_files_validate(tmp_path, write_run):
    collection = collect(write_run(tmp_path))
    summary = write_submissions(collection, tmp_path / "out")
    assert summary["file"].tolist() == [f"submissions/synthetic-cpu_demo-train/results_{m}_seed{s}.json"
                                        for m in ("finetune", "spottune-eval-argmax") for s in (0, 1)]
    assert (summary["problem"] == "").all() and not summary["complete"].any()
    checked = validate_results(tmp_path / "out" / summary["file"].iloc[0])
    assert checked.coverage["submitted"].to_dict() == {"imagenet12": 5, "dtd": 5, "svhn": 5}  # IMAGES per fabricated job


def test_partial_real_submission_is_reported_and_not_written(tmp_path, write_run):
    summary = write_submissions(collect(write_run(tmp_path, synthetic=False)), tmp_path / "out")
    assert summary["problem"].str.startswith("coverage (every expected image id exactly once required)").all()
    assert not list((tmp_path / "out").rglob("*.json"))


def test_cli_writes_everything_and_prints_the_leaderboard(tmp_path, capsys, monkeypatch, write_run):
    run = write_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["collect", str(run)]) == 0
    out = tmp_path / "results" / run.name
    printed = capsys.readouterr().out
    assert printed.startswith((out / "leaderboard.md").read_text())
    assert "9 finished job(s), 1 incomplete" in printed
    assert "spottune/svhn/seed2" in printed
    assert {p.name for p in out.iterdir()} == {"leaderboard.md", "leaderboard.tex", "scores.csv", "plots",
                                               "index.html", "submissions"}


def test_cli_refuses_a_folder_without_jobs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["collect", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "no job folders" in error and error.count("\n") == 1
    assert main(["collect", str(tmp_path / "absent")]) == 2
    assert "not a folder" in capsys.readouterr().err
    with pytest.raises(CollectError):
        collect([])


def _as_two_policy_jobs(run, overrides, preset_protocol):
    """Rewrite the fabricated spottune jobs as format-2 records: one training evaluated with
    argmax and with sampled decisions (sampled accuracy 10 points lower, its own file)."""
    for path in run.glob("jobs/*/spottune/*/seed[01]/final.json"):
        final = json.loads(path.read_text())
        sampled = {split: dict(entry, accuracy=entry["accuracy"] - 0.1,
                               predictions=f"predictions_{split}-eval-sample.npz")
                   for split, entry in final["splits"].items()}
        for split in sampled:
            (path.parent / sampled[split]["predictions"]).write_bytes((path.parent / f"predictions_{split}.npz")
                                                                      .read_bytes())
        final.update(format=2, evaluations=[{"eval_policy": "argmax", "splits": final["splits"]},
                                            {"eval_policy": "sample", "splits": sampled}],
                     backbone={"file": "x/backbone.pt", "kind": "pretrained by this run"})
        final["spec"]["extra"].update(overrides=overrides, preset_protocol=preset_protocol)
        path.write_text(json.dumps(final))


def test_one_training_gives_a_row_per_policy_and_overrides_are_shown(tmp_path, write_run):
    run = write_run(tmp_path)
    _as_two_policy_jobs(run, {"precision": "bf16"}, "trainval")
    collection = collect(run)
    table = board(collection)
    sampled, argmax = "spottune (eval sample; precision=bf16)", "spottune (eval argmax; precision=bf16)"
    assert table.methods() == ["finetune", argmax, sampled]
    assert table.value(argmax, "dtd") == pytest.approx(65.0) and table.value(sampled, "dtd") == pytest.approx(55.0)
    assert table.value(argmax, "#par") == table.value(sampled, "#par")
    assert any("reproduces protocol trainval; these jobs ran protocol train" in note for note in table.notes)
    assert table.backbone == "pretrained by this run"
    assert set(collection.policy["variant"]) == {argmax, sampled}
    files = write_submissions(collection, tmp_path / "out")
    assert {"results_spottune-eval-sample-precision-bf16_seed0.json",
            "results_spottune-eval-argmax-precision-bf16_seed0.json"} <= {Path(f).name for f in files["file"]}


def test_backbone_labels_say_where_the_backbone_came_from():
    from decathlon.report.collection import backbone_label

    assert backbone_label(None) == backbone_label({"kind": "pretrained by this run"}) == "pretrained by this run"
    assert backbone_label({"kind": "ours", "file": "runs/a/pretrain/x/backbone.pt", "sha256": "ab" * 32}) == \
        f"ours, from backbone.pt (sha256 {'ab' * 6})"
    imported = {"kind": "imported", "file": "w/backbone.pt", "sha256": "cd" * 32,
                "source": {"kind": "imported", "name": "resnet26_pretrained.t7", "sha256": "ef" * 32}}
    assert backbone_label(imported) == f"imported resnet26_pretrained.t7 (sha256 {'ef' * 6})"


def _copy_predictions(job, to):
    for file in job.glob("predictions_*.npz"):
        (to / file.name).write_bytes(file.read_bytes())


def test_s_baseline_is_the_presets_own_finetune_not_a_variant(tmp_path, write_run):
    run = write_run(tmp_path)
    for path in run.glob("jobs/*/finetune/*/seed*/final.json"):   # the same jobs again, in bf16, worse
        variant = path.parent.parent.parent.parent / "finetune-bf16" / path.parent.parent.name / path.parent.name
        variant.mkdir(parents=True)
        final = json.loads(path.read_text())
        final["spec"]["extra"]["overrides"] = {"precision": "bf16"}
        final["splits"] = {s: dict(e, accuracy=e["accuracy"] - 0.2) for s, e in final["splits"].items()}
        (variant / "final.json").write_text(json.dumps(final))
        _copy_predictions(path.parent, variant)
        (variant / "done").write_text("")
    pretrain = next(run.glob("pretrain/*"))   # and a bf16 pretraining, 10 points worse
    bf16 = pretrain.parent / "cpu_demo-hbf16-seed0"
    bf16.mkdir()
    final = json.loads((pretrain / "final.json").read_text())
    final["spec"]["extra"]["overrides"] = {"precision": "bf16"}
    final["splits"] = {s: dict(e, accuracy=e["accuracy"] - 0.1) for s, e in final["splits"].items()}
    (bf16 / "final.json").write_text(json.dumps(final))
    _copy_predictions(pretrain, bf16)
    (bf16 / "done").write_text("")
    table = board(collect(run))
    assert table.value("finetune", "S") == pytest.approx(750)   # its own baseline: 250 per domain, ImNet included
    assert table.value("finetune (precision=bf16)", "S") < 750
    assert table.value("finetune", "imagenet12") == pytest.approx(40.0)   # each variant its own pretraining
    assert table.value("finetune (precision=bf16)", "imagenet12") == pytest.approx(30.0)
    assert table.value("spottune (eval argmax)", "imagenet12") == pytest.approx(40.0)
