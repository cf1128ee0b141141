"""Reading PyTorch's legacy (non-zip) checkpoint files without running them.

The public ResNet-26 and SpotTune checkpoints are `torch.save` of WHOLE pickled modules,
written by PyTorch 0.3.1 and 0.4.1 under Python 2.7: the legacy container, pickle
protocol 2, Python 2 byte strings (read as latin1). Unpickling such a file the usual way
imports the authors' code and lets the file call any global it names. Here nothing of
the file runs:

* `find_class` of our `pickle.Unpickler` subclass allows only the globals the caller
  names (module classes, each a `PickledModule` record that only stores its attribute
  dict) and those the public writers put in every file (`legacy_globals.ALLOWED_GLOBALS`:
  tensors, parameters, storages, the modules' backend, OrderedDict, the numpy float64 of
  a recorded accuracy), each an inert stand-in of ours that accepts exactly the calls
  those writers made. Any other global (os.system, builtins.open, numpy's reconstruct
  functions, what today's torch writes) is refused before anything is looked up, with
  an error naming the file and the global.
* `persistent_load` accepts the two legacy records only: ('module', class, source file,
  source), whose source is ignored, and ('storage', type, key, location, numel, view).
* The container is parsed here: magic number, protocol version, system info, the main
  pickle, the list of storage keys, then each storage as an int64 element count and its
  raw little-endian bytes. Every tensor is loaded on the CPU.

Why not torch's own allow-list unpickler, `torch.load(weights_only=True)` inside
`torch.serialization.safe_globals([...])`? Checked on torch 2.14: it does read the legacy
container and decodes latin1, but it refuses the ('module', ...) persistent id that every
pickled nn.Module class produces ("Only persistent_load of storage is allowed"), it lacks
the BINSTRING opcode Python 2 writes for strings over 255 bytes (such as the saved class
sources), and allowing the real torch.nn classes would run their `__setstate__` on the
file's data.
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import torch

from decathlon.checkpoints.errors import CheckpointError
from decathlon.checkpoints.legacy_globals import (ALLOWED_GLOBALS, FileParameter, FileStorage, FileTensor,
                                             PickledModule, RefusedContent, StorageType)

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C   # the first pickle of every legacy torch.save file
PROTOCOL_VERSION = 1001
ZIP_MAGIC = b"PK\x03\x04"                # torch.save since PyTorch 1.6 (our own files)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, allowed: dict, storages: dict | None, budget: int):
        super().__init__(file, encoding="latin1")   # Python 2 byte strings
        self.path, self.allowed, self.storages, self.budget = path, allowed, storages, budget
        self.views: dict = {}

    def find_class(self, module: str, name: str):
        found = self.allowed.get(f"{module}.{name}")
        if found is None:
            raise CheckpointError(f"{self.path}: refused to unpickle global {module}.{name}: not one of the "
                                  f"globals a public checkpoint needs (nothing of the file was run)")
        return found

    def persistent_load(self, pid):
        kind = pid[0] if isinstance(pid, tuple) and pid else None
        if kind == "module" and len(pid) == 4 and isinstance(pid[1], type) and issubclass(pid[1], PickledModule):
            return pid[1]
        if kind == "storage" and self.storages is not None and len(pid) == 6:
            return self._storage(*pid[1:])
        raise CheckpointError(f"{self.path}: unexpected persistent record {str(pid)[:80]} "
                              f"(expected a legacy 'module' or 'storage' record)")

    def _storage(self, storage_type, key, location, numel, view) -> FileStorage:
        if not (isinstance(storage_type, StorageType) and isinstance(key, str) and type(numel) is int
                and numel >= 0 and isinstance(location, str)):
            raise CheckpointError(f"{self.path}: malformed storage record {key!r}")
        if key not in self.storages:
            self.budget -= numel * storage_type.dtype.itemsize
            if self.budget < 0:
                raise CheckpointError(f"{self.path}: its storages are larger than the file (truncated?)")
            self.storages[key] = FileStorage(torch.empty(numel, dtype=storage_type.dtype))
        root = self.storages[key]
        if view is None:
            return root
        view_key, offset, size = view   # storage views of PyTorch < 0.4
        if view_key not in self.views:
            if not (type(offset) is int and type(size) is int and 0 <= offset <= offset + size
                    <= root.flat.numel()):
                raise CheckpointError(f"{self.path}: storage view {view_key!r} outside storage {key!r}")
            self.views[view_key] = FileStorage(root.flat[offset:offset + size])
        return self.views[view_key]


def read_legacy_torch(path, module_classes) -> object:
    """The object a legacy `torch.save` file holds, with every class named in
    `module_classes` ('module.Class' strings) as a `PickledModule` record, every tensor
    on the CPU, and nothing else of the file allowed to run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    stubs = {name: type(name.rsplit(".", 1)[1], (PickledModule,), {"class_name": name})
             for name in module_classes}
    storages: dict = {}
    with open(path, "rb") as f:
        head = f.read(4)
        if head == ZIP_MAGIC:
            raise CheckpointError(f"{path}: a zip-format torch.save file (PyTorch >= 1.6); the public "
                                  f"checkpoints use the legacy format this reader takes")
        f.seek(0)
        try:
            plain = [_load(f, path, {}) for _ in range(3)]
        except CheckpointError:
            plain = None
        if plain is None or plain[:2] != [MAGIC_NUMBER, PROTOCOL_VERSION]:
            raise CheckpointError(f"{path}: not a legacy torch.save file (no magic number "
                                  f"{MAGIC_NUMBER:#x} and protocol {PROTOCOL_VERSION} at its start)")
        if not isinstance(plain[2], dict) or plain[2].get("little_endian") is not True:
            raise CheckpointError(f"{path}: system info {plain[2]!r}: only little-endian files are read")
        budget = path.stat().st_size
        obj = _load(f, path, {**ALLOWED_GLOBALS, **stubs}, storages, budget)
        _read_storages(f, path, _load(f, path, {}), storages)
    return obj


def _load(f, path: Path, allowed: dict, storages: dict | None = None, budget: int = 0):
    try:
        return _Unpickler(f, path, allowed, storages, budget).load()
    except CheckpointError:
        raise
    except RefusedContent as err:
        raise CheckpointError(f"{path}: refused {err} (nothing of the file was run)") from None
    except Exception as err:  # the unpickler raises many types on damaged or foreign data
        raise CheckpointError(f"{path}: cannot read it as a legacy torch.save file "
                              f"({type(err).__name__}: {err})") from None


def _read_storages(f, path: Path, keys, storages: dict) -> None:
    """Fill the storages from the raw records that follow the main pickle."""
    if not isinstance(keys, list) or len(set(keys)) != len(keys) or set(keys) != set(storages):
        raise CheckpointError(f"{path}: its list of storage keys does not match the storages its pickle uses")
    for key in keys:
        flat = storages[key].flat
        count = f.read(8)
        if len(count) != 8 or struct.unpack("<q", count)[0] != flat.numel():
            raise CheckpointError(f"{path}: storage {key!r} should hold {flat.numel()} elements (truncated?)")
        if flat.numel() and f.readinto(flat.view(torch.uint8).numpy()) != flat.numel() * flat.element_size():
            raise CheckpointError(f"{path}: storage {key!r} is truncated")


def module_tensors(module: PickledModule, path, prefix: str = "", above: tuple = ()) -> tuple[dict, dict]:
    """(tensors, modules) of a pickled module tree: state_dict-style names -> tensors
    (parameters, then buffers, in nn.Module.state_dict order) and module paths ('' for
    the root) -> records. `above`: the modules on the way here."""
    if module in above or len(above) > 32:
        raise CheckpointError(f"{path}: the module tree loops or nests deeper than any network's, at {prefix!r}")
    tensors, modules = {}, {prefix.rstrip("."): module}
    for field, kind in (("_parameters", FileParameter), ("_buffers", FileTensor)):
        values = module.attribute(field, {})
        if not isinstance(values, dict):
            raise CheckpointError(f"{path}: {module.class_name} at {prefix or 'the root'!r} has a "
                                  f"{type(values).__name__} as {field}, expected a dict")
        for name, value in values.items():
            if value is not None and not isinstance(value, kind):
                raise CheckpointError(f"{path}: {prefix}{name} in {field} is a {type(value).__name__}, "
                                      f"expected a {kind.__name__}")
            if value is not None:
                tensors[prefix + name] = value.tensor
    children = module.attribute("_modules", {})
    if not isinstance(children, dict):
        raise CheckpointError(f"{path}: {module.class_name} at {prefix or 'the root'!r} has a "
                              f"{type(children).__name__} as _modules, expected a dict")
    for name, child in children.items():
        if child is not None and not isinstance(child, PickledModule):
            raise CheckpointError(f"{path}: {prefix}{name} is a {type(child).__name__}, expected a module")
        if child is not None:
            child_tensors, child_modules = module_tensors(child, path, f"{prefix}{name}.", (*above, module))
            tensors.update(child_tensors)
            modules.update(child_modules)
    return tensors, modules
