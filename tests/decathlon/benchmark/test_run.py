"""The benchmark runner (run_decathlon.py) with a backbone made elsewhere instead of pretraining."""
import json
import sys
from pathlib import Path

from decathlon.engine.checkpoint import file_sha256

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
try:
    import run_decathlon
finally:
    sys.path.pop(0)


def test_a_given_backbone_replaces_pretraining_and_is_named_in_the_tables(tiny_decathlon, tiny_backbone,
                                                                         public_backbone, tmp_path, capsys):
    """--backbone: ours (evaluated on imagenet12 for the ImNet column) or the public .t7 (its
    1000 classes do not fit the synthetic imagenet12: ImNet stays empty, the jobs still run)."""
    base = ["--data", str(tiny_decathlon), "--methods", "finetune", "--domains", "dtd", "--no-progress",
            "--device", "cpu", "--hparam", "epochs=1", "--hparam", "batch_size=16"]
    out, results = tmp_path / "ours", tmp_path / "ours-results"
    assert run_decathlon.main([*base, "--hparam", "width=0.125", "--backbone", str(tiny_backbone),
                               "--out", str(out), "--results", str(results)]) == 0
    sha = file_sha256(tiny_backbone)[:12]
    evaluation = json.loads(next((out / "pretrain").glob(f"*-backbone-{sha}-seed0/final.json")).read_text())
    assert evaluation["spec"]["hparams"]["epochs"] == 0 and evaluation["splits"]["test"]["accuracy"] is not None
    board = (results / "leaderboard.md").read_text()
    assert f"backbone ours, from backbone.pt (sha256 {sha})" in board and "ImNet is empty" not in board

    out, results = tmp_path / "public", tmp_path / "public-results"
    assert run_decathlon.main([*base, "--hparam", "width=1", "--backbone", str(public_backbone.file),
                               "--out", str(out), "--results", str(results)]) == 0
    assert "the ImNet column stays empty" in capsys.readouterr().out
    board = (results / "leaderboard.md").read_text()
    assert f"backbone imported resnet26_pretrained.t7 (sha256 {file_sha256(public_backbone.file)[:12]})" in board
    final = json.loads(next(out.glob("jobs/*/finetune/dtd/seed0/final.json")).read_text())
    assert final["backbone"]["kind"] == "imported"
    assert run_decathlon.main([*base, "--backbone", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
