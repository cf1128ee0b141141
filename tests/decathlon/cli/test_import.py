"""`decathlon import-backbone` and `import-spottune` end to end, and their one-line errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from decathlon.cli import main


@pytest.fixture(scope="module")
def public_files(public, old_torch, tmp_path_factory):
    """(resnet26_pretrained.t7 as PyTorch 0.3.1 wrote it, dtd.t7 trained on it as 0.4.1
    wrote it, a hostile .t7 and the file it would create)."""
    folder = tmp_path_factory.mktemp("public")
    backbone = public.backbone()
    net, agent = public.spottune(backbone, 47)
    marker = folder / "ran"
    return (old_torch.save({"net": backbone, "acc": np.float64(60.32), "epoch": 59},
                           folder / "resnet26_pretrained.t7", "0.3.1"),
            old_torch.save({"net": net, "agent": agent}, folder / "dtd.t7", "0.4.1"),
            old_torch.save({"net": public.Hostile(os.system, f"touch {marker}")}, folder / "hostile.t7", "0.3.1"),
            marker)


def test_both_commands_end_to_end(public_files, tmp_path, capsys):
    pretrained, dtd, _, _ = public_files
    backbone = tmp_path / "imported" / "backbone.pt"
    command = [sys.executable, "-m", "decathlon", "import-backbone", str(pretrained), "--out", str(backbone)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"-> {backbone}" in done.stdout
    assert torch.load(backbone, weights_only=True)["source"]["name"] == "resnet26_pretrained.t7"

    job = tmp_path / "spottune-dtd"
    assert main(["import-spottune", str(dtd), "--domain", "dtd", "--backbone", str(backbone), "--out", str(job)]) == 0
    assert "SpotTune on dtd (47 classes)" in capsys.readouterr().out
    assert {p.name for p in job.iterdir()} == {"spottune_domain.pt", "imported.json"}


@pytest.mark.parametrize("argv, message", [
    (["import-backbone", "{hostile}", "--out", "{tmp}/b.pt"], "{hostile}: refused to unpickle global posix.system"),
    (["import-backbone", "{dtd}", "--out", "{tmp}/b.pt"], "a SpotTune checkpoint"),
    (["import-backbone", "{tmp}/absent.t7", "--out", "{tmp}/b.pt"], "{tmp}/absent.t7: file not found"),
    (["import-spottune", "{dtd}", "--domain", "svhn", "--backbone", "{pretrained}", "--out", "{tmp}/job"],
     "has 47 classes, domain 'svhn' has 10"),
    (["import-spottune", "{hostile}", "--domain", "dtd", "--backbone", "{pretrained}", "--out", "{tmp}/job"],
     "refused to unpickle global posix.system"),
    (["import-spottune", "{dtd}", "--domain", "dtd", "--backbone", "{hostile}", "--out", "{tmp}/job"],
     "refused to unpickle global posix.system"),
], ids=["hostile", "spottune-file", "missing", "classes", "hostile-spottune", "hostile-backbone"])
def test_errors_are_one_line_and_exit_2(public_files, tmp_path, capsys, argv, message):
    pretrained, dtd, hostile, marker = public_files
    names = dict(pretrained=pretrained, dtd=dtd, hostile=hostile, tmp=tmp_path)
    assert main([arg.format(**names) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message.format(**names) in err
    assert not marker.exists() and not (tmp_path / "b.pt").exists() and not (tmp_path / "job").exists()
