"""`decathlon train --method taps` end to end on the tiny data: its record of tuned layers,
the domain file that stores only them, and its hyperparameters refused by name."""
import json

import torch

from decathlon.cli import main
from decathlon.jobdir import TAPS_DOMAIN_FILE


def test_taps_job_records_its_gates_and_ships_only_tuned_deltas(tiny_decathlon, tiny_backbone, tiny_hparams,
                                                                tmp_path, capsys):
    out = tmp_path / "taps"
    hparams = dict(tiny_hparams, batch_size=8, sparsity_weight=200.0)   # closes gates within its 3 penalised steps
    argv = ["train", "--method", "taps", "--domain", "dtd", "--data", str(tiny_decathlon), "--backbone",
            str(tiny_backbone), "--out", str(out), "--device", "cpu", "--no-progress"]
    for key, value in hparams.items():
        argv += ["--hparam", f"{key}={json.dumps(value)}"]
    assert main(argv) == 0
    final = json.loads((out / "final.json").read_text())
    gates = final["splits"]["val"]["stats"]["layer_gates"]
    assert len(gates) == 25 and set(gates) <= {0.0, 1.0} and sum(gates) < 25 and gates == final["splits"]["test"]["stats"]["layer_gates"]
    shipped = torch.load(out / TAPS_DOMAIN_FILE, weights_only=True)
    assert [float(on) for on in shipped["gates"].values()] == gates
    deltas = [key for key in shipped["state"] if key.endswith(".delta")]
    assert len(deltas) == sum(gates)
    records = [json.loads(line) for line in (out / "record.jsonl").read_text().splitlines()]
    assert records[0]["train_sparsity_penalty"] == 0.0 < records[1]["train_sparsity_penalty"]  # cpu_demo: from epoch 2
    capsys.readouterr()
    assert main([*argv[:-2], "--out", str(tmp_path / "bad"), "--hparam", "lam=1"]) == 2
    assert "unknown hyperparameter 'lam' for taps on dtd" in capsys.readouterr().err
