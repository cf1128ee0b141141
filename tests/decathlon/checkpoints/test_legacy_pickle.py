"""The restricted reader of legacy torch.save files: what it reads, what it refuses unrun."""
import builtins
import io
import os
import pickle
import pickletools
import re

import pytest
import torch
from torch import nn

from decathlon.checkpoints import CheckpointError, read_legacy_torch
from decathlon.checkpoints.legacy_pickle import MAGIC_NUMBER, PROTOCOL_VERSION, PickledModule, module_tensors
from decathlon.checkpoints.public import PUBLIC_CLASSES

# The globals of the residual-adapter authors' file, in the order its pickle first names them.
GLOBALS_03 = ["numpy.core.multiarray scalar", "numpy dtype", "models ResNet", "collections OrderedDict",
              "torch.nn.backends.thnn _get_thnn_function_backend", "models conv_task",
              "torch.nn.modules.conv Conv2d", "torch.nn.parameter Parameter", "torch._utils _rebuild_tensor",
              "torch FloatStorage", "torch.nn.modules.container ModuleList",
              "torch.nn.modules.batchnorm BatchNorm2d", "torch.nn.modules.container Sequential",
              "models BasicBlock", "torch.nn.modules.activation ReLU", "torch.nn.modules.pooling AvgPool2d",
              "torch.nn.modules.pooling AdaptiveAvgPool2d", "torch.nn.modules.linear Linear"]


def _globals(data: bytes) -> list:
    """The GLOBAL opcodes of every pickle in a legacy file, in first-met order."""
    names, stream = [], io.BytesIO(data)
    for _ in range(5):
        names += [arg for op, arg, _ in pickletools.genops(stream) if op.name == "GLOBAL" and arg not in names]
    return names


def test_the_authors_0_3_file_is_read_as_inert_records(public_backbone):
    data = public_backbone.file.read_bytes()
    assert _globals(data) == GLOBALS_03   # the fixture names what PyTorch 0.3.1 under Python 2.7 named
    assert data[:2] == b"\x80\x02" and pickle.SHORT_BINSTRING + b"\x03acc" in data
    obj = read_legacy_torch(public_backbone.file, PUBLIC_CLASSES)
    assert list(obj) == ["acc", "net", "epoch"]             # Python 2 dict order
    assert type(obj["acc"]) is float and obj["acc"] == 60.32 and obj["epoch"] == 59   # the numpy float64
    net = obj["net"]
    assert isinstance(net, PickledModule) and net.class_name == "models.ResNet"
    assert not isinstance(net, torch.nn.Module)   # nothing of the public classes was built
    tensors, modules = module_tensors(net, public_backbone.file)
    expected = {k: v for k, v in public_backbone.net.state_dict().items() if "num_batches_tracked" not in k}
    assert tensors.keys() == expected.keys() and all(torch.equal(tensors[k], v) for k, v in expected.items())
    assert modules["layer1.0.conv1.conv"].class_name == "torch.nn.modules.conv.Conv2d"
    assert modules["layer1.0.conv1.conv"].attribute("stride") == (2, 2)
    assert "track_running_stats" not in modules["layer1.0.conv1.bns.0"].attributes


def test_spottunes_0_4_1_file_is_read(public, old_torch, tmp_path):
    net, agent = public.spottune(public.backbone(), 47)
    file = old_torch.save({"net": nn.DataParallel(net), "agent": agent}, tmp_path / "dtd.t7", "0.4.1")
    names = _globals(file.read_bytes())
    assert {"torch._utils _rebuild_tensor_v2", "torch LongStorage", "torch.nn.parameter Parameter",
            "torch.nn.parallel.data_parallel DataParallel"} <= set(names)
    assert "torch._utils _rebuild_tensor" not in names and "torch._utils _rebuild_parameter" not in names
    obj = read_legacy_torch(file, PUBLIC_CLASSES)
    tensors, _ = module_tensors(obj["net"], file)
    assert tensors.keys() == {f"module.{k}" for k in net.state_dict()}
    assert all(torch.equal(tensors[f"module.{k}"], v) for k, v in net.state_dict().items())
    assert tensors["module.bn1.num_batches_tracked"].dtype == torch.int64


def test_python2_byte_strings_are_read_as_latin1(public, old_torch, tmp_path):
    note = "réseau pré-entraîné, " * 20   # over 255 bytes: BINSTRING
    file = old_torch.save({"net": public.backbone(), "note": note.encode("latin1")}, tmp_path / "py2.t7", "0.3.1")
    assert pickle.BINSTRING + len(note).to_bytes(4, "little") + note.encode("latin1") in file.read_bytes()
    assert read_legacy_torch(file, PUBLIC_CLASSES)["note"] == note


def _refused(file, message):
    with pytest.raises(CheckpointError, match=re.escape(f"{file}: refused ") + ".*" + re.escape(message)):
        read_legacy_torch(file, PUBLIC_CLASSES)


@pytest.mark.parametrize("call, args, named", [
    (os.system, ("touch {marker}",), "posix.system"),
    (builtins.exec, ("open(r'{marker}', 'w').close()",), "__builtin__.exec"),   # Python 2 name
])
def test_a_hostile_pickle_is_refused_before_anything_runs(public, old_torch, tmp_path, call, args, named):
    marker = tmp_path / "marker"
    args = tuple(a.format(marker=marker) for a in args)
    file = old_torch.save({"net": public.Hostile(call, *args)}, tmp_path / "hostile.t7", "0.3.1")
    _refused(file, f"to unpickle global {named}: not one of the globals")
    assert not marker.exists()


def _call(old_torch, qualified, *args, state=None):
    module, name = qualified.rsplit(".", 1)
    return old_torch.Call(old_torch.Global(module, name), args, state)


@pytest.mark.parametrize("acc, message", [
    # numpy's generic reconstruction builds any array or object: never allowed.
    (lambda c: c("numpy.core.multiarray._reconstruct", 0), "global numpy.core.multiarray._reconstruct"),
    (lambda c: c("numpy.core.multiarray.scalar", c("numpy.dtype", "O", 0, 1), b"\x00" * 8),
     "numpy.dtype('O', 0, 1); only numpy.dtype('f8', 0, 1)"),
    (lambda c: c("numpy.core.multiarray.scalar", c("numpy.dtype", "f8", 0, 1, state=(3, "|", None, None, None,
                                                                                      -1, -1, 63)), b"\x00" * 8),
     "a numpy dtype state (3, '|', None, None, None, -1, -1, 63)"),
    (lambda c: c("numpy.core.multiarray.scalar", c("numpy.dtype", "f8", 0, 1), b"\x00" * 8),
     "numpy.core.multiarray.scalar(_Float64Dtype"),   # a dtype without its float64 state
    (lambda c: c("numpy.core.multiarray.scalar", c("numpy.dtype", "f8", 0, 1, state=(3, "<", None, None, None,
                                                                                      -1, -1, 0)), b"\x00" * 80),
     "only a float64 from its 8 bytes is read"),
    (lambda c: c("numpy.core.multiarray.scalar", 1, 2, 3), "numpy.core.multiarray.scalar called with 3 arguments"),
], ids=["reconstruct", "object-dtype", "dtype-state", "no-dtype-state", "long-data", "arity"])
def test_numpy_is_read_only_as_the_float64_of_an_accuracy(public, old_torch, tmp_path, acc, message):
    file = old_torch.save({"net": public.backbone(), "acc": acc(lambda *a, **k: _call(old_torch, *a, **k))},
                          tmp_path / "acc.t7", "0.3.1")
    _refused(file, message)


@pytest.mark.parametrize("value, message", [
    (lambda c, s: c("torch._utils._rebuild_tensor", s, 0, (2,), (1,), False),
     "torch._utils._rebuild_tensor called with 5 arguments; the public checkpoints call it as "
     "torch._utils._rebuild_tensor(storage, storage_offset, size, stride)"),
    (lambda c, s: c("torch._utils._rebuild_tensor_v2", s, 0, (2,), (1,), False),
     "torch._utils._rebuild_tensor_v2 called with 5 arguments"),
    (lambda c, s: c("torch._utils._rebuild_tensor_v2", s, 0, (2,), (1,), False, {}),
     "_rebuild_tensor_v2 with requires_grad=False, backward_hooks={}"),
    (lambda c, s: c("torch._utils._rebuild_tensor", s, 0, (2,), (1,), state=(s, 0, (2,), (1,))),
     "a file setting attributes of a tensor of size (2,)"),   # torch's Tensor.__setstate__ would set_()
    (lambda c, s: c("torch.nn.parameter.Parameter", c("torch._utils._rebuild_tensor_v2", s, 0, (2,), (1,), True,
                                                      None), True, state=(True, False, None)),
     "a Parameter state (True, False, None)"),   # 0.4.1 set no state after Parameter(tensor, requires_grad)
    (lambda c, s: c("torch._utils._rebuild_tensor", s, 1, (2,), (1,)), "reaching element 2 of a storage of 2"),
], ids=["arity-0.3", "arity-0.4", "hooks", "tensor-state", "parameter-state", "bounds"])
def test_tensor_calls_other_than_the_writers_are_refused(old_torch, tmp_path, value, message):
    storage = old_torch.StorageOf(torch.ones(2))
    file = old_torch.save({"w": value(lambda *a, **k: _call(old_torch, *a, **k), storage)}, tmp_path / "t.t7",
                          "0.3.1")
    _refused(file, message)


def test_a_file_todays_torch_writes_in_the_legacy_format_is_refused(tmp_path):
    # Not what the public writers produced: its modules name Python's set, its tensors carry hooks dicts.
    file = tmp_path / "today.t7"
    torch.save({"net": nn.Sequential(nn.Conv2d(3, 4, 3))}, file, _use_new_zipfile_serialization=False,
               pickle_protocol=2)
    _refused(file, "to unpickle global __builtin__.set")


def test_a_class_not_listed_is_refused_by_name(public_backbone):
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
    _refused(file, "a file setting attributes of storage type torch.float32")
    assert read_legacy_torch(public_backbone.file, PUBLIC_CLASSES)["net"].class_name == "models.ResNet"
