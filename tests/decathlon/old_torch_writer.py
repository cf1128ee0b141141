"""`torch.save` as PyTorch 0.3.1 and 0.4.1 wrote it under Python 2.7 (cPickle, protocol 2).

The public checkpoints were written that way; today's torch cannot write them (its
tensors reduce to `_rebuild_tensor_v2` and `_rebuild_parameter`, its modules carry
attributes 0.3 never had), so the importer tests build them here, opcode for opcode,
from what the old sources did:

* the container of `torch/serialization.py` `_save`: the magic number (a Python 2 long:
  LONG1), the protocol version 1001, the system info dict, the main pickle with
  persistent ids, the sorted storage keys, then per storage an int64 element count and
  its little-endian bytes. Each is its own pickle, memo and all.
* persistent ids: a module class the first time it is met, `('module', class, source
  file, source)`; a storage, `('storage', torch.<Type>Storage, key, 'cuda:0', numel,
  None)` (CUDA storages under the CPU type name: `normalize_storage_type`); keys are
  `str(storage._cdata)`, a decimal address.
* modules: NEWOBJ of the class, BUILD with the instance dict in Python 2 dict order,
  `_backend` as `torch.nn.backends.thnn._get_thnn_function_backend()` (one object,
  memo-referenced after), `OrderedDict` as Python 2.7 reduces it: `(OrderedDict,
  ([[key, value], ...],))`.
* 0.3.1 (`autograd/variable.py`, `tensor.py`): a tensor is `torch._utils._rebuild_tensor(
  storage, offset, size, stride)`; a Parameter is a Variable: `Parameter(tensor)` then
  BUILD `(requires_grad, False, backward_hooks)`. BatchNorm2d has no
  `track_running_stats` nor `num_batches_tracked`.
* 0.4.1 (`tensor.py`, `nn/parameter.py`): a tensor is `torch._utils._rebuild_tensor_v2(
  storage, offset, size, stride, requires_grad, backward_hooks)`; a Parameter reduces
  as `Parameter(<its tensor reduce>, requires_grad)`. BatchNorm2d has both.
* Python 2 strings are byte strings: SHORT_BINSTRING / BINSTRING (read back with
  `encoding='latin1'`); a numpy float64 (the recorded `acc`) is
  `numpy.core.multiarray.scalar(numpy.dtype('f8', 0, 1) + BUILD (3, '<', None, None,
  None, -1, -1, 0), <8 bytes>)`.

Anything else in the saved object (the hostile tests' objects) is pickled as Python
pickles it. Markers `Global`, `Call` and `StorageOf` let a test write any call a file
could hold.
"""
import inspect
import pickle
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
VERSIONS = ("0.3.1", "0.4.1")
_MASK64 = (1 << 64) - 1
_MODULE_FIELDS = ("_backend", "_parameters", "_buffers", "_backward_hooks", "_forward_hooks",
                  "_forward_pre_hooks", "_modules", "training")   # Module.__init__, in its order
_BN_03 = ("num_features", "affine", "eps", "momentum")
# The instance attributes (besides _MODULE_FIELDS) of the torch.nn classes the public nets
# use, as each version's __init__ set them; a name -> value pair overrides today's value.
_TORCH_ATTRIBUTES = {
    nn.Conv2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "transposed",
                "output_padding", "groups"),
    nn.BatchNorm2d: {"0.3.1": _BN_03, "0.4.1": (*_BN_03, "track_running_stats")},
    nn.Linear: ("in_features", "out_features"),
    nn.ReLU: (("threshold", 0), ("value", 0), "inplace"),   # a Threshold subclass until 1.0
    nn.AvgPool2d: ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    nn.AdaptiveAvgPool2d: ("output_size",),
    nn.Sequential: (), nn.ModuleList: (),
    nn.DataParallel: (("dim", 0), ("device_ids", [0]), ("output_device", 0)),   # one GPU
}


class Global:
    """GLOBAL module\\nname; `module_class`: a persistent 'module' record the first time.
    One object per name, as a class or function is one object, so the memo refers back."""

    _interned: dict = {}

    def __new__(cls, module, name, module_class=None):
        key = (module, name, module_class)
        if key not in cls._interned:
            cls._interned[key] = super().__new__(cls)
            cls._interned[key].module, cls._interned[key].name = module, name
            cls._interned[key].module_class = module_class
        return cls._interned[key]


class Call:
    """func(*args), then BUILD `state` when given (REDUCE as the old reducers wrote it)."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state


class StorageOf:
    """The persistent 'storage' record of a tensor's data (for writing calls by hand)."""

    def __init__(self, tensor):
        self.tensor = tensor


class _NewObject:
    """NEWOBJ of `cls` with no arguments, then BUILD `state` (a module)."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state


class _Storage:
    def __init__(self, key, tensor):
        self.key, self.tensor = key, tensor.detach().contiguous().flatten()
        self.type = Global("torch", {torch.float32: "FloatStorage", torch.int64: "LongStorage"}[tensor.dtype])


def py2_hash(data: bytes) -> int:
    """Python 2.7's str hash (64-bit, no hash randomisation: its default)."""
    if not data:
        return 0
    x = data[0] << 7
    for byte in data:
        x = ((1000003 * x) ^ byte) & _MASK64
    x ^= len(data)
    return _MASK64 - 1 if x == _MASK64 else x   # -1 is reserved for errors: -2


def py2_dict(items) -> dict:
    """A dict that iterates as a Python 2.7 dict does after inserting `items` in order
    (open addressing on the str hash, resized to 4 x used when two thirds full)."""
    table, used = [None] * 8, 0

    def place(table, key):
        mask, h = len(table) - 1, py2_hash(key.encode())
        i, perturb = h & mask, h
        while table[i & mask] is not None:
            i, perturb = (5 * i + perturb + 1) & _MASK64, perturb >> 5
        table[i & mask] = key

    values = dict(items)
    for key in values:
        place(table, key)
        used += 1
        if used * 3 >= len(table) * 2:
            size = 8
            while size <= 4 * used:
                size <<= 1
            old, table = table, [None] * size
            for known in filter(None, old):
                place(table, known)
    return {key: values[key] for key in table if key is not None}


class _Converter:
    """Today's objects -> what the old version pickled, as markers (one per object, so
    that shared objects stay shared in the memo)."""

    def __init__(self, version):
        assert version in VERSIONS, version
        self.version, self.seen, self.storages = version, {}, []
        self.backend = Call(Global("torch.nn.backends.thnn", "_get_thnn_function_backend"), ())
        self.float64 = Call(Global("numpy", "dtype"), ("f8", 0, 1), (3, "<", None, None, None, -1, -1, 0))

    def __call__(self, obj):
        if id(obj) not in self.seen:
            self.seen[id(obj)] = (obj, self._convert(obj))
        return self.seen[id(obj)][1]

    def _convert(self, obj):
        if isinstance(obj, nn.Module):
            return self._module(obj)
        if isinstance(obj, torch.Tensor):
            return self._tensor(obj)
        if isinstance(obj, np.float64):
            return Call(Global("numpy.core.multiarray", "scalar"), (self.float64, struct.pack("<d", float(obj))))
        if isinstance(obj, StorageOf):
            return self._storage(obj.tensor)
        if isinstance(obj, Call):
            return Call(obj.func, self(obj.args), self(obj.state))
        if isinstance(obj, OrderedDict):
            return Call(Global("collections", "OrderedDict"), ([[key, self(v)] for key, v in obj.items()],))
        if type(obj) is dict:
            return py2_dict((key, self(v)) for key, v in obj.items())
        if type(obj) in (list, tuple):
            return type(obj)(map(self, obj))
        return obj

    def _storage(self, tensor):
        # Every tensor of the fabricated nets owns its storage, as each did under 0.3/0.4.
        storage = _Storage(str(0x55D0_4C00_0000 + 0x2000 * len(self.storages)), tensor)
        self.storages.append(storage)
        return storage

    def _tensor(self, tensor):
        where = (self._storage(tensor), 0, tuple(tensor.shape), tuple(tensor.contiguous().stride()))
        parameter = isinstance(tensor, nn.Parameter)
        if self.version == "0.3.1":
            data = Call(Global("torch._utils", "_rebuild_tensor"), where)
            return Call(Global("torch.nn.parameter", "Parameter"), (data,), (True, False, None)) if parameter else data
        data = Call(Global("torch._utils", "_rebuild_tensor_v2"), (*where, parameter, None))
        return Call(Global("torch.nn.parameter", "Parameter"), (data, True)) if parameter else data

    def _module(self, module):
        cls = type(module)
        listed = _TORCH_ATTRIBUTES.get(cls)
        if isinstance(listed, dict):
            listed = listed[self.version]
        if listed is None:   # a class of the public code: its plain attributes
            assert not cls.__module__.startswith("torch."), f"no {self.version} layout for {cls}"
            listed = tuple(k for k in vars(module) if not k.startswith("_") and k != "training")
        buffers = OrderedDict(module._buffers)
        if isinstance(module, nn.BatchNorm2d) and self.version == "0.3.1":
            buffers.pop("num_batches_tracked")
        fields = [("_backend", self.backend), ("_parameters", self(OrderedDict(module._parameters))),
                  ("_buffers", self(buffers)), *((name, self(OrderedDict())) for name in _MODULE_FIELDS[3:6]),
                  ("_modules", self(OrderedDict(module._modules))), ("training", module.training)]
        for entry in listed:
            name, value = entry if isinstance(entry, tuple) else (entry, getattr(module, entry))
            fields.append((name, self(value)))
        return _NewObject(Global(cls.__module__, cls.__qualname__, module_class=cls), py2_dict(fields))


class _Py2Pickler(pickle._Pickler):
    """cPickle of Python 2.7 at protocol 2, for the markers above: the pure-Python pickler
    writes the same opcodes for dicts, lists, tuples, ints, floats, bools and memo, once
    str is a byte string (Python 2 had no other for these files)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, module_classes_seen=None):
        super().__init__(file, protocol=2)
        self.module_classes_seen = module_classes_seen

    def persistent_id(self, obj):
        if self.module_classes_seen is None:
            return None
        if isinstance(obj, _Storage):
            return ("storage", obj.type, obj.key, "cuda:0", obj.tensor.numel(), None)
        if isinstance(obj, Global) and obj.module_class is not None and obj.module_class not in self.module_classes_seen:
            self.module_classes_seen.add(obj.module_class)
            try:
                source_file, source = inspect.getsourcefile(obj.module_class), inspect.getsource(obj.module_class)
            except (TypeError, OSError):   # as torch did: the source is optional
                source_file = source = None
            return ("module", obj, source_file, source)
        return None

    def save_py2_str(self, obj):
        data = obj.encode() if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    def save_global_marker(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    def save_call(self, obj):
        self.save(obj.func)
        self.save(obj.args)
        self.write(pickle.REDUCE)
        self.memoize(obj)
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    def save_new_object(self, obj):
        self.save(obj.cls)
        self.save(())
        self.write(pickle.NEWOBJ)
        self.memoize(obj)
        self.save(obj.state)
        self.write(pickle.BUILD)

    dispatch.update({str: save_py2_str, bytes: save_py2_str, Global: save_global_marker, Call: save_call,
                     _NewObject: save_new_object})


def _dump(obj, f, module_classes_seen=None):
    _Py2Pickler(f, module_classes_seen).dump(obj)


def save(obj, path, version):
    """Write `obj` (nets of today's torch, numpy float64s, plain values) at `path` as
    torch.save of PyTorch `version` (one of VERSIONS) under Python 2.7 wrote it."""
    assert sys.byteorder == "little"
    convert = _Converter(version)
    main = convert(obj)
    with open(path, "wb") as f:
        _dump(MAGIC_NUMBER, f)
        _dump(PROTOCOL_VERSION, f)
        _dump(py2_dict([("protocol_version", PROTOCOL_VERSION), ("little_endian", True),
                        ("type_sizes", py2_dict([("short", 2), ("int", 4), ("long", 8)]))]), f)
        _dump(main, f, module_classes_seen=set())
        storages = sorted(convert.storages, key=lambda s: s.key)
        _dump([s.key for s in storages], f)
        for storage in storages:
            f.write(struct.pack("<q", storage.tensor.numel()))
            f.write(storage.tensor.numpy().tobytes())   # little-endian, as sys_info says
    return path
