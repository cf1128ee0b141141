"""--config FILE.yaml: refused inputs, the command line over the file, config.yaml in run and
job folders, and passing a folder's config.yaml back reproduces the job or the run."""
import json

import numpy as np
import pytest
import yaml

from decathlon.cli import main
from decathlon.cli.run import parse_args


def _refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("command", ["run", "train"])
@pytest.mark.parametrize("text, expected", [
    ("preset: cpu_demo\nwidht: 0.5\n", "unknown key 'widht' (expected one of "),
    ("compile: maybe\n", "key 'compile' is \"maybe\"; expected true or false"),
    ("preset: fast\n", "key 'preset' is \"fast\"; expected one of cpu_demo, spottune_paper"),
    ("hparams: [lr, 0.1]\n", "key 'hparams' is [\"lr\", 0.1]; expected a mapping"),
    ("device: cpu\nprotocol: {a: 1\n", ", line 3: invalid YAML"),
    ("- a list\n", "expected a mapping of option names to values, got list"),
])
def test_a_bad_config_file_is_one_line_naming_the_file_and_key(command, text, expected, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    err = _refused([command, "--config", str(path), "--out", str(tmp_path / "out")], capsys)
    assert f"error: {path}" in err and expected in err, err
    assert not (tmp_path / "out").exists()


def test_a_wrong_type_is_refused_even_where_the_command_line_wins(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("seeds: three\n")
    err = _refused(["run", "--config", str(path), "--seeds", "2"], capsys)
    assert err == f"error: {path}: key 'seeds' is \"three\"; expected an int\n"
    path.write_text("seeds: 1.5\n")
    assert "key 'seeds' is 1.5; expected an int" in _refused(["run", "--config", str(path)], capsys)


def test_a_missing_file_names_it_and_a_name_that_is_no_file_lists_the_presets(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    assert _refused(["run", "--config", str(missing)], capsys) == f"error: {missing}: no such config file\n"
    err = _refused(["train", "--config", "spottune_papr", "--out", str(tmp_path)], capsys)
    assert "spottune_papr: no such config file; or a preset: cpu_demo, spottune_paper" in err


def test_the_command_line_wins_over_the_file_and_hparams_merge(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preset: spottune_paper\nseeds: 3\nmethods: [finetune, spottune]\nno_progress: true\n"
                    "hparams:\n  lr: 1e-3\n  epochs: 2\n")
    args = parse_args(["--config", str(path), "--seeds", "1", "--hparam", "epochs=1"])
    assert args.seeds == 1   # given on the command line, though it is the default
    assert args.preset == "spottune_paper" and args.methods == ("finetune", "spottune") and args.no_progress
    from decathlon.cli.common import overrides_from

    assert overrides_from(args) == {"lr": 0.001, "epochs": 1}   # 1e-3 read as --hparam reads it
    assert parse_args(["--config", "spottune_paper"]).preset == "spottune_paper"   # a preset name still works
    assert parse_args([]).preset == "cpu_demo" and parse_args([]).seeds == 1


def test_train_needs_its_required_options_from_somewhere(tmp_path, capsys):
    path = tmp_path / "job.yaml"
    path.write_text("method: finetune\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(path), "--out", str(tmp_path / "job")])
    assert exit_info.value.code == 2
    assert "required: --domain (or give them in --config FILE)" in capsys.readouterr().err


def _tiny(tiny_hparams) -> list:
    return [f"{key}={json.dumps(value)}" for key, value in dict(tiny_hparams, epochs=1).items()]


def _accuracies(job) -> list:
    final = json.loads((job / "final.json").read_text())
    return [(e["domain"], e["eval_policy"], split, result["accuracy"])
            for e in final["evaluations"] for split, result in e["splits"].items()]


def test_a_job_folder_config_trains_the_same_job_again(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path,
                                                      capsys):
    first, again = tmp_path / "first", tmp_path / "again"
    argv = ["train", "--method", "spottune", "--domain", "dtd", "--data", str(tiny_decathlon), "--backbone",
            str(tiny_backbone), "--device", "cpu", "--no-progress"]
    for entry in _tiny(tiny_hparams):
        argv += ["--hparam", entry]
    assert main([*argv, "--out", str(first)]) == 0
    config = yaml.safe_load((first / "config.yaml").read_text())
    assert config["method"] == "spottune" and config["domain"] == "dtd" and config["preset"] == "cpu_demo"
    assert config["resolved_hparams"]["temperature"] == 5.0 and config["hparams"]["epochs"] == 1

    assert main(["train", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0
    assert _accuracies(again) == _accuracies(first)
    for name in ("predictions_test.npz", "predictions_val-eval-sample.npz"):
        assert np.array_equal(np.load(first / name)["labels"], np.load(again / name)["labels"])
    old = json.loads((first / "final.json").read_text())["spec"]
    new = json.loads((again / "final.json").read_text())["spec"]
    assert {**old, "out": None} == {**new, "out": None}
    assert (again / "config.yaml").read_text() == (first / "config.yaml").read_text()

    config["resolved_hparams"]["temperature"] = 1.0   # an edit the preset and overrides no longer give
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "edited.yaml"), "--out", str(tmp_path / "x")]) == 2
    assert "edited.yaml: resolved_hparams.temperature is 1.0, but the preset and hparams resolve to 5.0" in \
        capsys.readouterr().err


def test_a_run_folder_config_reruns_the_run_and_other_settings_are_refused(tiny_decathlon, tiny_backbone,
                                                                         tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--data", str(tiny_decathlon), "--methods", "finetune", "--domains", "dtd", "--device", "cpu",
            "--backbone", str(tiny_backbone), "--no-progress", "--hparam", "width=0.125", "--hparam", "epochs=1",
            "--hparam", "batch_size=16", "--out", str(out), "--results", str(tmp_path / "results")]
    assert main(argv) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["preset"] == "cpu_demo" and config["protocol"] == "train" and config["methods"] == ["finetune"]
    assert config["hparams"] == {"width": 0.125, "epochs": 1, "batch_size": 16} and config["out"] == str(out)
    job = next(out.glob("jobs/*/finetune/dtd/seed0"))
    assert yaml.safe_load((job / "config.yaml").read_text())["hparams"] == config["hparams"]
    finished = (job / "final.json").stat().st_mtime_ns

    assert main(["run", "--config", str(out / "config.yaml"), "--jobs-per-device", "1"]) == 0
    assert (job / "final.json").stat().st_mtime_ns == finished   # found done, skipped
    capsys.readouterr()
    assert main(["run", "--config", str(out / "config.yaml"), "--seeds", "2", "--hparam", "epochs=2"]) == 2
    err = capsys.readouterr().err
    assert f"error: {out / 'config.yaml'}: this run folder was made with other settings" in err
    assert "hparams: " in err and "seeds" not in err and err.count("\n") == 1   # more seeds alone may be added
    assert [path.name for path in out.glob("jobs/*/finetune/dtd/*")] == ["seed0"]   # nothing ran


def test_the_backbone_options_override_a_job_config_as_hparam_does(tmp_path):
    from decathlon.benchmark import hparams
    from decathlon.cli import build_parser
    from decathlon.cli.config_file import check_resolved_hparams

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"method": "finetune", "domain": "dtd",
                                      "resolved_hparams": hparams("finetune", "dtd")}))
    on_resnet18 = hparams("finetune", "dtd", overrides={"arch": "timm:resnet18"})
    parser = build_parser()

    def checked(*options):
        args = parser.parse_args(["train", "--config", str(config), "--out", str(tmp_path / "job"), *options])
        return args.check(args, args.command_parser)

    check_resolved_hparams(checked("--backbone-arch", "timm:resnet18"), on_resnet18)   # the command line wins
    with pytest.raises(ValueError, match="resolved_hparams.arch is \"resnet26\""):
        check_resolved_hparams(checked(), on_resnet18)
