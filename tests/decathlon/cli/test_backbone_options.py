"""--backbone-arch / --input-size / --patch-size / --backbone-weights: hyperparameter overrides
and the backbone file, refused in one line when wrong; an open-track run end to end."""
import json

import pytest
import safetensors.torch
import timm
import torch

from decathlon.cli.run import main as run_main

TINY_VIT_KWARGS = {"depth": 2, "embed_dim": 48, "num_heads": 2}
VIT = ["--backbone-arch", "timm:vit_tiny_patch16_224", "--patch-size", "8", "--input-size", "native",
       "--hparam", f"arch_kwargs={json.dumps(TINY_VIT_KWARGS)}"]
SHORT = ["--hparam", "epochs=1", "--hparam", "lr_milestones=[1]", "--hparam", "batch_size=16", "--device", "cpu",
         "--no-progress"]
ONE_JOB = [*SHORT, "--methods", "finetune", "--domains", "dtd"]


def _one_line(capsys, pattern):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert pattern in err, err


def _run(data, tmp_path, *argv):
    return run_main(["--data", str(data), "--out", str(tmp_path / "run"), "--results", str(tmp_path / "results"),
                     *argv])


@pytest.fixture
def no_hub(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("timm's hub was called")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", refuse)


def test_a_conflict_with_hparam_is_refused_the_same_value_is_not(tmp_path, capsys):
    assert _run(tmp_path / "none", tmp_path, "--backbone-arch", "timm:resnet18", "--hparam", "arch=timm:resnet50") == 2
    _one_line(capsys, '--backbone-arch "timm:resnet18" conflicts with --hparam arch="timm:resnet50"')
    assert _run(tmp_path / "none", tmp_path, "--backbone-arch", "timm:resnet18", "--hparam", "arch=timm:resnet18",
                "--methods", "finetune") == 2
    _one_line(capsys, "manifest")   # got as far as the data: the options were accepted


def test_an_unknown_timm_name_and_a_method_not_on_the_arch_are_one_line(tiny_decathlon, tmp_path, capsys):
    assert _run(tiny_decathlon, tmp_path, "--backbone-arch", "timm:no_such_net", *SHORT) == 2
    _one_line(capsys, "backbone arch 'timm:no_such_net': timm has no model 'no_such_net'")
    assert _run(tiny_decathlon, tmp_path, "--backbone-arch", "timm:resnet18", "--methods",
                "finetune,series_adapters", "--domains", "dtd", *SHORT) == 2
    _one_line(capsys, "backbone arch 'timm:resnet18': method(s) series_adapters are not defined on it; the methods "
                      "defined on it: scratch, feature_extractor, finetune, bn_adapt, spottune, spottune_global, "
                      "random_policy, bitfit, lora")
    assert not (tmp_path / "run").exists()


def test_bad_weight_files_are_one_line(tiny_decathlon, tmp_path, capsys):
    assert _run(tiny_decathlon, tmp_path, *VIT, "--backbone-weights", str(tmp_path / "gone.safetensors"), *ONE_JOB) == 2
    _one_line(capsys, "gone.safetensors: checkpoint not found")
    torch.save(timm.create_model("resnet18"), tmp_path / "module.pth")
    assert _run(tiny_decathlon, tmp_path, "--backbone-arch", "timm:resnet18", "--backbone-weights",
                str(tmp_path / "module.pth"), *ONE_JOB) == 2
    _one_line(capsys, "module.pth: refused: it needs a full unpickler")
    safetensors.torch.save_file(timm.create_model("resnet18").state_dict(), tmp_path / "r18.safetensors")
    assert _run(tiny_decathlon, tmp_path, *VIT, "--backbone-weights", str(tmp_path / "r18.safetensors"), *ONE_JOB) == 2
    _one_line(capsys, "r18.safetensors: the weights are of another architecture")
    assert _run(tiny_decathlon, tmp_path, "--backbone-weights", str(tmp_path / "r18.safetensors"), *ONE_JOB) == 2
    _one_line(capsys, "for a timm arch (--backbone-arch timm:<name>)")
    assert not list((tmp_path / "run").glob("jobs/*"))


def test_an_open_track_run_with_external_weights(tiny_decathlon, tmp_path, capsys, no_hub):
    """The issue's run: a ViT from a weight file made elsewhere with lora, vpt and spottune (and
    finetune, the S baseline), end to end to open-track tables."""
    model = timm.create_model("vit_tiny_patch16_224", **TINY_VIT_KWARGS)   # 224 px, patch 16: resampled
    safetensors.torch.save_file(model.state_dict(), tmp_path / "vit.safetensors")
    methods = ["bn_adapt", "finetune", "lora", "spottune", "vpt"]
    code = _run(tiny_decathlon, tmp_path, *VIT, "--backbone-weights", str(tmp_path / "vit.safetensors"),
                "--methods", ",".join(methods), "--domains", "dtd", *SHORT)
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    assert out.out.count("the ImNet column stays empty") == 1
    assert not (tmp_path / "run" / "pretrain").exists()
    finals = [json.loads(path.read_text()) for path in (tmp_path / "run").glob("jobs/*/*/dtd/seed0/final.json")]
    assert sorted(final["spec"]["method"] for final in finals) == methods
    for final in finals:
        assert final["track"] == "open" and final["pretraining"]["kind"] == "external"
        assert final["architecture"]["arch"] == "timm:vit_tiny_patch16_224"
        assert final["architecture"]["patch_size"] == 8 and final["architecture"]["input_size"] is None
        assert final["spec"]["extra"]["overrides"]["arch"] == "timm:vit_tiny_patch16_224"
    board = (tmp_path / "results" / "leaderboard.md").read_text()
    assert "## Open track" in board and "## Closed track" not in board and "not ranked with the closed track" in board
    rows = [line for line in board.splitlines() if line.startswith("| lora") or line.startswith("| vpt")]
    assert rows and all("timm:vit_tiny_patch16_224 | native | external file vit.safetensors" in row for row in rows)


def test_a_closed_track_run_pretrains_its_vit_on_imagenet12_and_scores_its_own_imnet(tiny_decathlon, tmp_path,
                                                                                    capsys, no_hub):
    """Without weights the run pretrains the ViT on the Decathlon's imagenet12: closed track,
    its ImNet cell that pretraining job's accuracy."""
    code = _run(tiny_decathlon, tmp_path, *VIT, "--methods", "finetune,lora", "--domains", "dtd", *SHORT)
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    pretrained = json.loads(next((tmp_path / "run").glob("pretrain/*/final.json")).read_text())
    assert pretrained["track"] == "closed" and pretrained["architecture"]["arch"] == "timm:vit_tiny_patch16_224"
    finals = [json.loads(path.read_text()) for path in (tmp_path / "run").glob("jobs/*/*/dtd/seed0/final.json")]
    assert sorted(final["spec"]["method"] for final in finals) == ["finetune", "lora"]
    assert all(final["track"] == "closed" and final["pretraining"]["kind"] == "suite" for final in finals)
    board = (tmp_path / "results" / "leaderboard.md").read_text()
    assert "## Closed track" in board and "## Open track" not in board
    imnet = f"{100 * pretrained['splits']['val']['accuracy']:.2f}"
    rows = [line for line in board.splitlines() if line.startswith("| lora")]
    assert rows and all(f"| {imnet} |" in row and "timm:vit_tiny_patch16_224 | native | imagenet12" in row
                        for row in rows)


def test_every_job_command_takes_the_backbone_options(tmp_path, capsys):
    from decathlon.cli import build_parser, main as decathlon_main
    from decathlon.cli.common import overrides_from

    parser = build_parser()
    for command in (["pretrain"], ["train", "--method", "finetune", "--domain", "dtd"]):
        args = parser.parse_args([*command, "--out", str(tmp_path), "--backbone-arch", "timm:resnet18",
                                  "--input-size", "96"])
        args = args.check(args, args.command_parser)
        assert overrides_from(args) == {"arch": "timm:resnet18", "input_size": 96}
    with pytest.raises(SystemExit):   # pretraining starts from random initialisation
        parser.parse_args(["pretrain", "--out", str(tmp_path), "--backbone-weights", "x.safetensors"])
    capsys.readouterr()
    assert decathlon_main(["sweep", "--methods", "finetune", "--backbone-arch", "timm:resnet18",
                           "--backbone-weights", "timm-hub", "--out", str(tmp_path / "sweep")]) == 2
    _one_line(capsys, "--backbone-weights timm-hub: a sweep starts from a weight file")
