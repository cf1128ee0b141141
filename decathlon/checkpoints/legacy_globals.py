"""What the globals of a public legacy checkpoint unpickle to: inert stand-ins of ours.

The two public checkpoints were written by `torch.save` of PyTorch 0.3.1 (the residual-
adapter authors' `resnet26_pretrained.t7`) and 0.4.1 (SpotTune's `cv/<domain>/<domain>.t7`),
both under Python 2.7. Besides the network's own classes (`PickledModule` records), such a
file names only these globals, and calls each only in the forms those versions wrote:

* `torch._utils._rebuild_tensor(storage, offset, size, stride)` (0.3.1) and
  `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, None)`
  (0.4.1): a view of one of our storages, bounds checked.
* `torch.nn.parameter.Parameter(tensor)` then the Variable state `(requires_grad, False,
  None)` (0.3.1), or `Parameter(tensor, requires_grad)` (0.4.1).
* `torch.FloatStorage`, `torch.LongStorage` (0.4.1 BatchNorm `num_batches_tracked`): the
  storage types, CUDA storages included (torch.save records them under the CPU name; the
  `torch.cuda.` names are taken too).
* `torch.nn.backends.thnn._get_thnn_function_backend()`: every module's `_backend`.
* `collections.OrderedDict([[key, value], ...])`: the modules' attribute dicts.
* `numpy.core.multiarray.scalar(numpy.dtype('f8', 0, 1) with state (3, '<', None, None,
  None, -1, -1, 0), <8 bytes>)`: the numpy float64 accuracy the 0.3.1 file records,
  read as a Python float. No other numpy object: numpy's reconstruct functions would
  build arbitrary objects (an 'O' dtype scalar unpickles any object).

Any other call or state (another arity, another dtype, a BUILD on a tensor) raises
`RefusedContent` naming it; none of torch's or numpy's own code sees the file's data.
"""
from __future__ import annotations

import inspect
import pickle
import struct
from collections import OrderedDict

import torch


class RefusedContent(pickle.UnpicklingError):
    """An allowed global called, or an object set, in a form the public writers never used."""


class PickledModule:
    """An inert stand-in for one pickled nn.Module: its class name and attribute dict."""

    class_name = "?"

    def __setstate__(self, state) -> None:
        if not isinstance(state, dict):
            raise RefusedContent(f"the state of a {self.class_name}: a {type(state).__name__}, expected a dict")
        self.attributes = state

    def attribute(self, name: str, default=None):
        return getattr(self, "attributes", {}).get(name, default)


class _Inert:
    """What the allowed globals resolve to: shared by every read, so a pickle may not set
    attributes on them (its BUILD opcode calls `__setstate__`)."""

    __slots__ = ()

    def __setstate__(self, state) -> None:
        raise RefusedContent(f"a file setting attributes of {self!r}")


class StorageType(_Inert):
    """What a storage class name (torch.FloatStorage, ...) unpickles to: its dtype only."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"storage type {self.dtype}"


class _Function(_Inert):
    """An allowed global function, under its public name, taking exactly the arguments
    of `function` (positional, as REDUCE passes them)."""

    __slots__ = ("name", "function")

    def __init__(self, name: str, function):
        self.name, self.function = name, function

    def __call__(self, *args):
        signature = inspect.signature(self.function)
        try:
            signature.bind(*args)
        except TypeError:
            raise RefusedContent(f"{self.name} called with {len(args)} arguments; the public checkpoints "
                                 f"call it as {self.name}{signature}") from None
        return self.function(*args)

    def __repr__(self) -> str:
        return self.name


class FileStorage:
    """A storage of the file: a flat CPU tensor, filled once the main pickle is read."""

    def __init__(self, flat: torch.Tensor):
        self.flat = flat


class FileTensor(_Inert):
    """A tensor of the file (a view of a FileStorage); the file may not set its state."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __repr__(self) -> str:
        return f"a tensor of size {tuple(self.tensor.shape)}"


class FileParameter:
    """A Parameter of the file: its tensor. PyTorch 0.3 pickled a Parameter as a Variable,
    `Parameter(tensor)` then BUILD `(requires_grad, volatile=False, backward_hooks=None)`."""

    __slots__ = ("tensor", "awaits_state")

    def __init__(self, tensor: torch.Tensor, awaits_state: bool):
        self.tensor, self.awaits_state = tensor, awaits_state

    def __setstate__(self, state) -> None:
        if not (self.awaits_state and isinstance(state, tuple) and len(state) == 3
                and type(state[0]) is bool and state[1] is False and state[2] is None):
            raise RefusedContent(f"a Parameter state {str(state)[:60]}; PyTorch 0.3 wrote (requires_grad, "
                                 f"False, None) once, after Parameter(tensor)")
        self.awaits_state = False


def _tensor(storage, offset, size, stride) -> FileTensor:
    if not isinstance(storage, FileStorage):
        raise RefusedContent(f"a tensor built from a {type(storage).__name__}, expected a storage")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(type(n) is int and n >= 0 for n in (offset, *size, *stride))):
        raise RefusedContent(f"a tensor of size {str(size)[:40]}, stride {str(stride)[:40]}, offset {offset!r}")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if 0 not in size and last >= storage.flat.numel():
        raise RefusedContent(f"a tensor of size {size} reaching element {last} of a storage of "
                             f"{storage.flat.numel()}")
    return FileTensor(storage.flat.as_strided(size, stride, offset))


def _rebuild_tensor(storage, storage_offset, size, stride):
    """torch._utils._rebuild_tensor as PyTorch 0.3 called it."""
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks):
    """torch._utils._rebuild_tensor_v2 as PyTorch 0.4 called it (hooks: None, none set)."""
    if type(requires_grad) is not bool or backward_hooks is not None:
        raise RefusedContent(f"_rebuild_tensor_v2 with requires_grad={str(requires_grad)[:20]}, backward_hooks="
                             f"{str(backward_hooks)[:40]}; PyTorch 0.4 wrote a bool and None")
    return _tensor(storage, storage_offset, size, stride)


def _parameter(data, requires_grad=None) -> FileParameter:
    """torch.nn.parameter.Parameter(tensor) (0.3) or Parameter(tensor, requires_grad) (0.4)."""
    if not isinstance(data, FileTensor) or not (requires_grad is None or type(requires_grad) is bool):
        raise RefusedContent(f"Parameter({type(data).__name__}, {str(requires_grad)[:20]}); expected a tensor "
                             f"(and a bool)")
    return FileParameter(data.tensor, awaits_state=requires_grad is None)


def _thnn_function_backend():
    """What PyTorch 0.3/0.4 modules pickle as their `_backend`; we keep nothing."""
    return None


FLOAT64_DTYPE_ARGS = ("f8", 0, 1)                               # numpy.dtype.__reduce__ (numpy 1.x, Python 2)
FLOAT64_DTYPE_STATE = (3, "<", None, None, None, -1, -1, 0)    # version, little-endian, no fields, flags 0


class _Float64Dtype:
    """numpy.dtype('f8', 0, 1): stays unusable until its state is exactly the float64 one."""

    __slots__ = ("complete",)

    def __init__(self):
        self.complete = False

    def __setstate__(self, state) -> None:
        exact = (isinstance(state, tuple) and len(state) == len(FLOAT64_DTYPE_STATE)
                 and all(type(a) is type(b) and a == b for a, b in zip(state, FLOAT64_DTYPE_STATE)))
        if self.complete or not exact:
            raise RefusedContent(f"a numpy dtype state {str(state)[:80]}; the float64 of the public files "
                                 f"has {FLOAT64_DTYPE_STATE}, once")
        self.complete = True


def _numpy_dtype(name, align, copy) -> _Float64Dtype:
    args = (name, align, copy)
    if not all(type(a) is type(b) and a == b for a, b in zip(args, FLOAT64_DTYPE_ARGS)):
        raise RefusedContent(f"numpy.dtype{str(args)[:80]}; only numpy.dtype{FLOAT64_DTYPE_ARGS}, the float64 "
                             f"of a recorded accuracy, is read")
    return _Float64Dtype()


def _numpy_scalar(dtype, data) -> float:
    """numpy.core.multiarray.scalar of a float64: its 8 bytes (a Python 2 str, latin1)."""
    if not (isinstance(dtype, _Float64Dtype) and dtype.complete and isinstance(data, str) and len(data) == 8):
        raise RefusedContent(f"numpy.core.multiarray.scalar({type(dtype).__name__}, {str(data)[:20]!r}); "
                             f"only a float64 from its 8 bytes is read")
    return struct.unpack("<d", data.encode("latin1"))[0]


def _functions(*pairs) -> dict:
    return {name: _Function(name, function) for name, function in pairs}


# The globals the public checkpoints name, whatever the network, by the name they were written.
ALLOWED_GLOBALS = {
    "collections.OrderedDict": OrderedDict,
    "torch.FloatStorage": StorageType(torch.float32),
    "torch.LongStorage": StorageType(torch.int64),
    # Old torch.save records CUDA storages under the CPU name; a file re-saved by hand from
    # the CUDA objects may name the CUDA type. Either way only the dtype is taken.
    "torch.cuda.FloatStorage": StorageType(torch.float32),
    "torch.cuda.LongStorage": StorageType(torch.int64),
    **_functions(("torch._utils._rebuild_tensor", _rebuild_tensor),
                 ("torch._utils._rebuild_tensor_v2", _rebuild_tensor_v2),
                 ("torch.nn.parameter.Parameter", _parameter),
                 ("torch.nn.backends.thnn._get_thnn_function_backend", _thnn_function_backend),
                 ("numpy.dtype", _numpy_dtype),
                 ("numpy.core.multiarray.scalar", _numpy_scalar)),
}
