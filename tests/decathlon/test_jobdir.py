"""The job folder's names and readers."""
import json

import pytest

from decathlon.jobdir import (FINAL_FILE, RECORD_FILE, append_record, is_done, mark_done, predictions_file,
                              read_final, read_records, truncate_records)


def test_records_are_strict_json_and_a_torn_last_line_is_left_out(tmp_path):
    assert read_records(tmp_path) == []
    append_record(tmp_path, {"epoch": 1, "train_loss": 2.5})
    append_record(tmp_path, {"epoch": 2, "train_loss": None})
    with pytest.raises(ValueError):
        append_record(tmp_path, {"epoch": 3, "train_loss": float("nan")})
    with open(tmp_path / RECORD_FILE, "a") as f:
        f.write('{"epoch": 3, "tr')   # a writer killed mid-line
    assert [r["epoch"] for r in read_records(tmp_path)] == [1, 2]
    truncate_records(tmp_path, 1)
    assert read_records(tmp_path) == [{"epoch": 1, "train_loss": 2.5}]


def test_done_and_final(tmp_path):
    assert not is_done(tmp_path)
    (tmp_path / FINAL_FILE).write_text(json.dumps({"spec": {"method": "finetune"}}))
    mark_done(tmp_path)
    assert is_done(tmp_path) and read_final(tmp_path)["spec"]["method"] == "finetune"


def test_predictions_file_names():
    assert predictions_file("test", "argmax", reported=True) == "predictions_test.npz"
    assert predictions_file("val", "sample", reported=False, domain="dtd") == "predictions_dtd_val-eval-sample.npz"


def test_a_run_config_may_grow_its_methods_and_seeds_but_not_change_its_settings(tmp_path):
    from decathlon.jobdir import claim_run_config, read_config_file
    first = {"preset": "cpu_demo", "methods": ["finetune"], "seeds": 1, "hparams": {}}
    claim_run_config(tmp_path, first, grow_keys=("methods", "seeds"))
    (tmp_path / "jobs").mkdir()   # the folder now holds work
    claim_run_config(tmp_path, {**first, "methods": ["nettailor", "finetune"], "seeds": 2},
                     grow_keys=("methods", "seeds"))
    kept = read_config_file(tmp_path / "config.yaml")
    assert kept["methods"] == ["finetune", "nettailor"] and kept["seeds"] == 2
    with pytest.raises(ValueError, match="preset"):
        claim_run_config(tmp_path, {**kept, "preset": "adapters_paper"}, grow_keys=("methods", "seeds"))
