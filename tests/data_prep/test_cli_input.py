"""`python -m data_prep prepare` and `verify` refuse bad options, a bad --out and unreadable
JSON with one line (exit 2) naming the option or the file, never a traceback."""
import shutil

import pytest

from data_prep.__main__ import main


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.replace("generating the synthetic mini-decathlon in data/synthetic-source ...\n",
                                          "")
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf"])
def test_scale_must_be_a_positive_number(tmp_path, monkeypatch, capsys, value):
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--domains", "svhn", f"--scale={value}", "--quiet"]) == 2
    assert _one_line(capsys) == f"error: --scale {float(value)}: expected a positive size multiplier " \
                                "(1.0: the default size)\n"
    assert not (tmp_path / "data").exists()


def test_seed_must_not_be_negative(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--domains", "svhn", "--seed", "-1", "--scale", "0.05", "--quiet"]) == 2
    assert _one_line(capsys) == "error: --seed -1: expected 0 or more\n"


@pytest.mark.parametrize("synthetic", [True, False])
@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_out_that_cannot_be_a_folder(pristine, tmp_path, monkeypatch, capsys, synthetic, where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("mine")
    out = tmp_path / "file" if where == "a file" else tmp_path / "file" / "out"
    source = ["--scale", "0.05"] if synthetic else ["--source", str(pristine.root), "--no-test-labels"]
    assert main(["prepare", *source, "--out", str(out), "--domains", "dtd", "--quiet"]) == 2
    err = _one_line(capsys)
    assert err.startswith(f"error: --out {out}: ")
    assert ("is a file, expected a folder" if where == "a file" else "cannot write there") in err
    assert (tmp_path / "file").read_text() == "mine"


def test_deeply_nested_annotation_file_is_named(devkit, tmp_path, capsys):
    path = devkit.root / "annotations" / "dtd_val.json"
    path.write_text('{"images": ' + "[" * 100000 + "]" * 100000 + "}")
    assert main(["prepare", "--source", str(devkit.parent), "--out", str(tmp_path / "out"), "--domains", "dtd",
                 "--no-test-labels", "--quiet"]) == 2
    assert _one_line(capsys).startswith(f"error: {path}: JSON nested too deeply to be an annotation file")


@pytest.mark.parametrize("content, problem", [("[" * 100000 + "]" * 100000, "JSON nested too deeply to be a manifest"),
                                              (b"\xff\xfe{", "not valid JSON")])
def test_unreadable_manifest_is_named(prepared, tmp_path, capsys, content, problem):
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    (out / "manifest.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["verify", str(out)]) == 2
    assert _one_line(capsys).startswith(f"error: {out / 'manifest.json'}: {problem}")


def test_packaged_labels_mismatch_names_no_test_labels(pristine, tmp_path, capsys):
    """The fixture's test split is a sample of the real one, so the packaged labels do not fit it."""
    assert main(["prepare", "--source", str(pristine.root), "--out", str(tmp_path / "out"), "--domains", "dtd",
                 "--quiet"]) == 2
    err = _one_line(capsys)
    assert "labels_test.zip!dtd_test.json does not list the same images" in err
    assert err.rstrip().endswith("give --test-labels with the labels of this source, or --no-test-labels to "
                                 "keep its test split unlabelled")
