"""--out of import-backbone, import-spottune and collect: a file where a folder is expected
(or the reverse), or a place that cannot be written, is one line naming the option and the
path, before any input is read (each input below is absent, and it is not what is named)."""
import pytest

from decathlon.cli import main


def _targets(tmp_path):
    (tmp_path / "file").write_text("")
    return {"a_folder": tmp_path, "a_file": tmp_path / "file", "under_a_file": tmp_path / "file" / "x"}


@pytest.mark.parametrize("command, target", [
    ("import-backbone", "a_folder"), ("import-backbone", "under_a_file"),
    ("import-spottune", "a_file"), ("import-spottune", "under_a_file"),
    ("collect", "a_file"), ("collect", "under_a_file"),
])
def test_an_unusable_out_is_one_line_naming_it_before_any_input_is_read(command, target, tmp_path, capsys):
    out = _targets(tmp_path)[target]
    absent = str(tmp_path / "absent")
    arguments = {"import-backbone": [absent], "collect": [absent],
                 "import-spottune": [absent, "--domain", "dtd", "--backbone", absent]}[command]
    assert main([command, *arguments, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: --out {out}" in err and "Traceback" not in err
