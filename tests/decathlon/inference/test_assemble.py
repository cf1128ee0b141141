"""`assemble_spottune` / `decathlon assemble` trust no backbone file they did not check:
the file at a job's recorded path must hash to the sha256 the job recorded, and every
job must record the same one. Job folders are written here as the trainer writes them
(final.json with its `backbone` record, spottune_domain.pt), at a tiny width."""
import json

import pytest
import torch

from decathlon.cli import main
from decathlon.inference import assemble_spottune
from decathlon.checkpoints import CheckpointError, save_backbone
from decathlon.files import sha256_file
from decathlon.jobdir import DOMAIN_FILE
from decathlon.models import SpotTuneNet, resnet26

WIDTH = 0.125
HPARAMS = {"width": WIDTH, "policy": "per_domain", "temperature": 5.0, "augmentation": "spottune"}


def _backbone(path, seed):
    torch.manual_seed(seed)
    save_backbone(resnet26(12, WIDTH), WIDTH, path)
    return path


def _job(folder, domain, backbone, sha256=None):
    """A finished SpotTune job of `domain` trained on `backbone`, recording `sha256`
    (default: the backbone file's)."""
    folder.mkdir(parents=True)
    net = SpotTuneNet(resnet26(12, WIDTH), "per_domain")
    net.add_domain(domain, 5)
    torch.save(net.domain_state_dict(domain), folder / DOMAIN_FILE)
    spec = {"method": "spottune", "domain": domain, "hparams": HPARAMS, "backbone": str(backbone)}
    record = {"file": str(backbone), "kind": "ours", "sha256": sha256 or sha256_file(backbone)}
    (folder / "final.json").write_text(json.dumps({"format": 2, "spec": spec, "backbone": record}))
    return folder


def test_jobs_on_the_recorded_backbone_assemble_and_its_weights_are_the_ones_loaded(tmp_path):
    backbone = _backbone(tmp_path / "backbone.pt", seed=0)
    copy = tmp_path / "elsewhere" / "backbone.pt"
    copy.parent.mkdir()
    copy.write_bytes(backbone.read_bytes())
    net = assemble_spottune([_job(tmp_path / "dtd", "dtd", backbone), _job(tmp_path / "svhn", "svhn", copy)])
    assert set(net.domains) == {"dtd", "svhn"}   # one backbone, wherever its copy lies
    saved = torch.load(backbone, weights_only=True)["state"]
    assert saved.keys() == net.backbone.state_dict().keys()
    for key, value in net.backbone.state_dict().items():
        torch.testing.assert_close(value, saved[key])


def test_a_replaced_backbone_is_refused_naming_the_path_and_both_sha256(tmp_path, capsys):
    backbone = _backbone(tmp_path / "backbone.pt", seed=0)
    trained_on = sha256_file(backbone)
    job = _job(tmp_path / "dtd", "dtd", backbone)
    _backbone(backbone, seed=1)   # the same path, other weights
    found = sha256_file(backbone)
    with pytest.raises(CheckpointError, match=f"{backbone}: sha256 {found}, but .*final.json records that the job "
                                              f"was trained on sha256 {trained_on}"):
        assemble_spottune([job])
    out = tmp_path / "model.pt"
    assert main(["assemble", str(job), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and trained_on in err and found in err
    assert not out.exists()


def test_jobs_on_different_backbones_are_refused(tmp_path):
    first, second = _backbone(tmp_path / "a.pt", seed=0), _backbone(tmp_path / "b.pt", seed=1)
    jobs = [_job(tmp_path / "dtd", "dtd", first), _job(tmp_path / "svhn", "svhn", second)]
    with pytest.raises(CheckpointError, match=f"trained on the backbone with sha256 {sha256_file(second)}, the "
                                              f"other jobs on sha256 {sha256_file(first)}: all jobs must share"):
        assemble_spottune(jobs)


def test_a_record_without_the_backbone_sha256_is_refused(tmp_path):
    job = _job(tmp_path / "dtd", "dtd", _backbone(tmp_path / "backbone.pt", seed=0))
    final = json.loads((job / "final.json").read_text())
    final["backbone"] = None
    (job / "final.json").write_text(json.dumps(final))
    with pytest.raises(CheckpointError, match="records no sha256 of the backbone"):
        assemble_spottune([job])


def test_an_imported_job_is_checked_against_its_recorded_backbone(tmp_path):
    backbone = _backbone(tmp_path / "backbone.pt", seed=0)
    job = _job(tmp_path / "dtd", "dtd", backbone)
    (job / "final.json").unlink()
    record = {"kind": "imported_spottune", "method": "spottune", "domain": "dtd", "num_classes": 5,
              "backbone": str(backbone), "backbone_provenance": {"kind": "ours", "sha256": sha256_file(backbone)},
              "width": WIDTH, "policy": "per_domain", "temperature": 5.0}
    (job / "imported.json").write_text(json.dumps(record))
    assert assemble_spottune([job]).domains.keys() == {"dtd"}
    _backbone(backbone, seed=1)
    with pytest.raises(CheckpointError, match="imported.json records that the job was trained on"):
        assemble_spottune([job])


@pytest.mark.parametrize("target", ["folder", "under_a_file"])
def test_an_unusable_out_is_refused_in_one_line_before_any_work(target, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    out = tmp_path if target == "folder" else tmp_path / "file" / "model.pt"
    # No job is read first: the folder given is no job, yet the refusal is about --out.
    assert main(["assemble", str(tmp_path / "no-job"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {out}") and err.count("\n") == 1


def test_a_spottune_job_on_a_timm_backbone_is_refused_in_one_line(tmp_path, capsys):
    job = _job(tmp_path / "dtd", "dtd", _backbone(tmp_path / "backbone.pt", seed=0))
    final = json.loads((job / "final.json").read_text())
    final["spec"]["hparams"] = {**HPARAMS, "arch": "timm:vit_tiny_patch16_224"}
    (job / "final.json").write_text(json.dumps(final))
    with pytest.raises(CheckpointError, match="backbone arch 'timm:vit_tiny_patch16_224'; one multi-domain model "
                                              "file is assembled from ResNet-26 jobs only"):
        assemble_spottune([job])
    assert main(["assemble", str(job), "--out", str(tmp_path / "model.pt")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
