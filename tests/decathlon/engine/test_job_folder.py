"""A job folder belongs to one job: its identity (backbone and data included), its lock, and
checkpoints that a failed write leaves intact."""
import errno
import shutil
import subprocess
import sys

import pytest

from decathlon.benchmark import hparams
from decathlon.checkpoints import CheckpointError, load_backbone, load_checkpoint, ours as checkpoint, save_atomic
from decathlon.engine import JobSpec, run_job
from decathlon.files import FolderLockedError, folder_lock


def _spec(data, backbone, tiny_hparams, out, epochs=1, **changes):
    hp = hparams("finetune", "dtd", "cpu_demo", dict(tiny_hparams, epochs=epochs))
    return JobSpec(**{**dict(method="finetune", domain="dtd", data=str(data), out=str(out), hparams=hp,
                             backbone=str(backbone), device="cpu", progress=False), **changes})


def test_resume_with_another_backbone_or_data_is_refused_naming_both(tiny_decathlon, tiny_backbone, tiny_hparams,
                                                                     tmp_path):
    out = tmp_path / "job"
    run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, out))
    other_backbone = tmp_path / "other.pt"
    content = load_checkpoint(tiny_backbone, "backbone")
    content["state"]["classifier.bias"] += 1   # the same architecture, other weights
    save_atomic(content, other_backbone)
    old_sha, new_sha = (load_backbone(path, 0.125)["provenance"]["sha256"] for path in (tiny_backbone, other_backbone))
    with pytest.raises(CheckpointError, match=rf"written for backbone_sha256='{old_sha}', this job has "
                                              rf"backbone_sha256='{new_sha}'"):
        run_job(_spec(tiny_decathlon, other_backbone, tiny_hparams, out, resume=True))

    other_data = tmp_path / "data"
    shutil.copytree(tiny_decathlon, other_data, ignore=shutil.ignore_patterns(".verified.json", ".lock"))
    with pytest.raises(CheckpointError, match=rf"written for data='{tiny_decathlon.resolve()} \(shards [0-9a-f]+\)'"
                                              rf", this job has data='{other_data.resolve()} "):
        run_job(_spec(other_data, tiny_backbone, tiny_hparams, out, resume=True))
    final = run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, out, resume=True))
    assert final["backbone"]["sha256"] == old_sha   # the job's own backbone and data resume


def test_a_second_job_into_a_held_folder_is_refused_naming_the_holder(tiny_decathlon, tiny_backbone, tiny_hparams,
                                                                      tmp_path):
    out = tmp_path / "job"
    with folder_lock(out, "job folder"):
        with pytest.raises(FolderLockedError, match=rf"job folder {out} is in use by pid \d+"):
            run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, out))
    assert not (out / "record.jsonl").exists()


def test_a_job_holds_its_folder_against_another_process(tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path,
                                                        monkeypatch):
    """While the job trains, a second process cannot take its folder."""
    out, seen = tmp_path / "job", []
    real_save = checkpoint.torch.save

    def probe_then_save(obj, f):
        if seen:
            return real_save(obj, f)
        probe = subprocess.run([sys.executable, "-c", "import sys; from decathlon.files import folder_lock\n"
                                "with folder_lock(sys.argv[1], 'job folder'): pass", str(out)],
                               capture_output=True, text=True, timeout=60)
        seen.append(probe.stderr.strip().splitlines()[-1])
        return real_save(obj, f)
    monkeypatch.setattr(checkpoint.torch, "save", probe_then_save)
    run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, out))
    assert seen and "FolderLockedError: job folder" in seen[0] and "is in use by pid" in seen[0]


def test_a_full_disk_at_checkpoint_save_is_one_error_and_keeps_the_last_checkpoint(
        tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, monkeypatch):
    out, saves = tmp_path / "job", []
    real_save = checkpoint.torch.save

    def disk_fills(obj, f):
        saves.append(obj.get("epoch"))
        if len(saves) == 2:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)
    monkeypatch.setattr(checkpoint.torch, "save", disk_fills)
    with pytest.raises(CheckpointError, match=rf"^cannot write checkpoint {out / 'checkpoint.pt'}: "
                                              r"No space left on device$"):
        run_job(_spec(tiny_decathlon, tiny_backbone, tiny_hparams, out, epochs=2))
    assert load_checkpoint(out / "checkpoint.pt", "job")["epoch"] == 0   # epoch 1's, intact
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) == []
    assert not (out / "done").exists()


def test_a_truncated_backbone_is_named_as_such(tiny_backbone, tmp_path):
    truncated = tmp_path / "backbone.pt"
    truncated.write_bytes(tiny_backbone.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=rf"{truncated}: a truncated or damaged file"):
        load_backbone(truncated, 0.125)
