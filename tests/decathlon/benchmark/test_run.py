"""The benchmark runner (`decathlon run`) with a backbone made elsewhere instead of pretraining."""
import json
from pathlib import Path

from decathlon.cli.run import main as run_main
from decathlon.files import sha256_file


def test_a_given_backbone_replaces_pretraining_and_is_named_in_the_tables(tiny_decathlon, tiny_backbone,
                                                                         public_backbone, tmp_path, capsys):
    """--backbone: ours (evaluated on imagenet12 for the ImNet column) or the public .t7 (its
    1000 classes do not fit the synthetic imagenet12: ImNet stays empty, the jobs still run)."""
    base = ["--data", str(tiny_decathlon), "--methods", "finetune", "--domains", "dtd", "--no-progress",
            "--device", "cpu", "--hparam", "epochs=1", "--hparam", "batch_size=16"]
    out, results = tmp_path / "ours", tmp_path / "ours-results"
    assert run_main([*base, "--hparam", "width=0.125", "--backbone", str(tiny_backbone),
                               "--out", str(out), "--results", str(results)]) == 0
    sha = sha256_file(tiny_backbone)[:12]
    evaluation = json.loads(next((out / "pretrain").glob(f"*-backbone-{sha}-seed0/final.json")).read_text())
    assert evaluation["spec"]["hparams"]["epochs"] == 0 and evaluation["splits"]["test"]["accuracy"] is not None
    board = (results / "leaderboard.md").read_text()
    assert f"backbone ours, from backbone.pt (sha256 {sha})" in board and "ImNet is empty" not in board

    out, results = tmp_path / "public", tmp_path / "public-results"
    assert run_main([*base, "--hparam", "width=1", "--backbone", str(public_backbone.file),
                               "--out", str(out), "--results", str(results)]) == 0
    assert "the ImNet column stays empty" in capsys.readouterr().out
    board = (results / "leaderboard.md").read_text()
    assert f"backbone imported resnet26_pretrained.t7 (sha256 {sha256_file(public_backbone.file)[:12]})" in board
    final = json.loads(next(out.glob("jobs/*/finetune/dtd/seed0/final.json")).read_text())
    assert final["backbone"]["kind"] == "imported"
    assert run_main([*base, "--backbone", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_joint_spottune_is_one_job_and_one_row_with_a_cell_per_domain(tiny_decathlon, tiny_backbone, tmp_path):
    """spottune_joint beside spottune: one job over both domains, tabulated as one method row,
    #par counting the shared trunk once; the per-domain SpotTune jobs exported as one model."""
    from decathlon.models import SpotTuneNet
    from decathlon.jobdir import MODEL_FILE
    from decathlon.report import collect
    from decathlon.report import leaderboards

    out, results = tmp_path / "run", tmp_path / "results"
    assert run_main(["--data", str(tiny_decathlon), "--methods", "spottune,spottune_joint", "--domains",
                               "dtd,svhn", "--no-progress", "--device", "cpu", "--hparam", "epochs=1",
                               "--hparam", "batch_size=16", "--hparam", "width=0.125", "--backbone",
                               str(tiny_backbone), "--out", str(out), "--results", str(results)]) == 0
    joint_jobs = list(out.glob("jobs/*/spottune_joint/*/seed0"))
    assert [job.parent.name for job in joint_jobs] == ["dtd+svhn"]
    final = json.loads((joint_jobs[0] / "final.json").read_text())
    board = next(b for b in leaderboards(collect(out)) if b.split == "test")
    row = next(m for m in board.methods() if m.startswith("spottune_joint (eval argmax"))
    assert board.value(row, "dtd") == 100 * final["evaluations"][0]["splits"]["test"]["accuracy"]
    assert board.value(row, "svhn") == 100 * final["evaluations"][2]["splits"]["test"]["accuracy"]
    own = sum(e["stored_parameters"]["total"] - e["stored_parameters"]["classifier"]
              for e in final["evaluations"] if e["eval_policy"] == "argmax")
    expected = 1 + (own + final["stored_parameters"]["shared"]) / final["reference_parameters"]
    assert board.value(row, "#par") == expected
    compare = list((results / "plots").glob("policy_*_compare.png"))   # spottune beside spottune_joint
    assert compare and all(path.stat().st_size > 0 for path in compare)
    assert any(path.name.startswith("curves_") and "spottune_joint" in path.name
               for path in (results / "plots").iterdir())
    assembled = SpotTuneNet.load(next(out.glob(f"models/spottune-seed0/{MODEL_FILE}")))
    assert set(assembled.domains) == {"dtd", "svhn"} and assembled.info["method"] == "spottune"


def test_job_folders_are_named_by_the_overrides_that_apply_to_each_method(tmp_path):
    from decathlon.benchmark.plan import pretrain_folder
    from decathlon.benchmark import BenchmarkConfig, plan_jobs

    config = BenchmarkConfig(out=str(tmp_path), methods=("finetune", "spottune_joint"), domains=("dtd", "svhn"),
                             overrides={"trunk_bn": "shared"})
    folders = {spec.method: Path(spec.out).parts[-4] for spec in plan_jobs(config, tmp_path / "backbone.pt")}
    assert folders["finetune"] == "cpu_demo-train"   # unchanged by trunk_bn: the preset's own job
    assert folders["spottune_joint"].startswith("cpu_demo-train-h")
    assert pretrain_folder(config).name == "cpu_demo-seed0"
    bf16 = BenchmarkConfig(out=str(tmp_path), methods=("finetune",), overrides={"precision": "bf16"})
    assert pretrain_folder(bf16).name.startswith("cpu_demo-h")   # precision changes pretraining too


def test_nettailor_runs_after_its_teacher_which_is_planned_once_and_never_retrained(
        tiny_decathlon, tiny_backbone, tmp_path):
    """--methods nettailor alone: the run adds the finetune job it learns from, runs it in
    a first wave, and a second run (or one that also selects finetune) reuses it."""
    from decathlon.benchmark import BenchmarkConfig, plan_jobs
    from decathlon.benchmark.plan import teacher_waves

    out = tmp_path / "run"
    base = ["--data", str(tiny_decathlon), "--domains", "dtd", "--no-progress", "--device", "cpu",
            "--hparam", "epochs=2", "--hparam", "prune_epoch=1", "--hparam", "batch_size=16",
            "--hparam", "width=0.125", "--backbone", str(tiny_backbone), "--out", str(out),
            "--results", str(tmp_path / "results")]
    config = BenchmarkConfig(out=str(out), methods=("nettailor",), domains=("dtd",))
    first, second = teacher_waves(plan_jobs(config, tiny_backbone))
    assert [s.method for s in first] == ["finetune"] and [s.method for s in second] == ["nettailor"]
    assert second[0].teacher == first[0].out
    assert run_main([*base, "--methods", "nettailor"]) == 0
    teacher = next(out.glob("jobs/*/finetune/dtd/seed0"))
    student = json.loads(next(out.glob("jobs/*/nettailor/dtd/seed0/final.json")).read_text())
    assert student["spec"]["teacher"] == str(teacher)
    trained = (teacher / "final.json").stat().st_mtime_ns
    assert run_main([*base, "--methods", "finetune,nettailor"]) == 0
    assert (teacher / "final.json").stat().st_mtime_ns == trained
    assert len(list(out.glob("jobs/*/finetune/*/*"))) == 1
