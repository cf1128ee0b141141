"""The restricted reader of legacy torch.save files: what it reads, what it refuses unrun."""
import builtins
import os
import pickle
import re

import pytest
import torch

from decathlon.engine.checkpoint import CheckpointError
from decathlon.engine.legacy_pickle import (MAGIC_NUMBER, PROTOCOL_VERSION, PickledModule, module_tensors,
                                             read_legacy_torch)
from decathlon.engine.public_format import PUBLIC_CLASSES


def test_a_public_file_is_read_as_inert_records(public, public_backbone):
    data = public_backbone.file.read_bytes()
    assert data[:2] == b"\x80\x02" and b"c__builtin__\nset" in data   # protocol 2, Python 2 names
    obj = read_legacy_torch(public_backbone.file, PUBLIC_CLASSES)
    assert obj["acc"] == 60.32 and obj["epoch"] == 59
    net = obj["net"]
    assert isinstance(net, PickledModule) and net.class_name == "models.ResNet"
    assert not isinstance(net, torch.nn.Module)   # nothing of the public classes was built
    tensors, modules = module_tensors(net, public_backbone.file)
    assert tensors.keys() == public_backbone.net.state_dict().keys()
    assert all(torch.equal(tensors[k], v) for k, v in public_backbone.net.state_dict().items())
    assert modules["layer1.0.conv1.conv"].class_name == "torch.nn.modules.conv.Conv2d"
    assert modules["layer1.0.conv1.conv"].attribute("stride") == (2, 2)


def test_python2_byte_strings_are_read_as_latin1(public, tmp_path):
    note = "réseau pré-entraîné, " * 20   # over 255 bytes: BINSTRING
    file = public.save_legacy({"net": public.backbone(), "note": note}, tmp_path / "py2.t7", py2=True)
    data = file.read_bytes()
    assert pickle.BINSTRING + len(note).to_bytes(4, "little") + note.encode("latin1") in data
    assert read_legacy_torch(file, PUBLIC_CLASSES)["note"] == note


@pytest.mark.parametrize("call, args, named", [
    (os.system, ("touch {marker}",), "posix.system"),
    (builtins.exec, ("open(r'{marker}', 'w').close()",), "__builtin__.exec"),   # Python 2 name
])
def test_a_hostile_pickle_is_refused_before_anything_runs(public, tmp_path, call, args, named):
    marker = tmp_path / "marker"
    args = tuple(a.format(marker=marker) for a in args)
    file = public.save_legacy({"net": public.Hostile(call, *args)}, tmp_path / "hostile.t7")
    with pytest.raises(CheckpointError, match=re.escape(f"{file}: refused to unpickle global {named}")):
        read_legacy_torch(file, PUBLIC_CLASSES)
    assert not marker.exists()


def test_a_class_not_listed_is_refused_by_name(public, public_backbone):
    with pytest.raises(CheckpointError, match="refused to unpickle global models.ResNet"):
        read_legacy_torch(public_backbone.file, [c for c in PUBLIC_CLASSES if c != "models.ResNet"])


def test_files_of_other_formats_are_named(public_backbone, tmp_path):
    zipped = tmp_path / "zip.pt"
    torch.save({"net": {}}, zipped)
    with pytest.raises(CheckpointError, match="zip-format torch.save file"):
        read_legacy_torch(zipped, PUBLIC_CLASSES)
    garbage = tmp_path / "garbage.t7"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a legacy torch.save file"):
        read_legacy_torch(garbage, PUBLIC_CLASSES)
    truncated = tmp_path / "truncated.t7"
    truncated.write_bytes(public_backbone.file.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match="truncated"):
        read_legacy_torch(truncated, PUBLIC_CLASSES)
    with pytest.raises(CheckpointError, match="file not found"):
        read_legacy_torch(tmp_path / "absent.t7", PUBLIC_CLASSES)


def test_a_pickle_cannot_change_the_allowed_globals(public_backbone, tmp_path):
    # GLOBAL torch.FloatStorage, then BUILD {'dtype': 1} on it: attributes set on a shared object.
    main = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeK\x01sb."
    header = b"".join(pickle.dumps(v, protocol=2) for v in (MAGIC_NUMBER, PROTOCOL_VERSION, {"little_endian": True}))
    file = tmp_path / "build.t7"
    file.write_bytes(header + main + pickle.dumps([], protocol=2))
    with pytest.raises(CheckpointError, match="the file sets attributes of storage type torch.float32"):
        read_legacy_torch(file, PUBLIC_CLASSES)
    assert read_legacy_torch(public_backbone.file, PUBLIC_CLASSES)["net"].class_name == "models.ResNet"
