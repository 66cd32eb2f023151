"""Reads PyTorch weight files without PyTorch: TorchScript archives and `torch.save` files.

Three layouts are understood, all pickles whose tensors point at separately stored storages:

  * zip archives (TorchScript `torch.jit.save`, and `torch.save` since PyTorch 1.6): a pickle
    `<root>/data.pkl` whose persistent ids name storages stored as `<root>/data/<key>`;
  * legacy `torch.save` files (before 1.6, or `_use_new_zipfile_serialization=False`): a
    magic-number pickle, a protocol pickle, a system-info pickle, the object pickle, the list
    of storage keys, then each storage's raw bytes after an int64 element count.

Modules of a TorchScript archive become :class:`ScriptObject` records (type name and
attributes), tensors become NumPy arrays. Nothing is executed: only the classes listed in
`_GLOBALS` may be named by the pickle, so an untrusted file cannot run code.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

# torch storage class -> NumPy dtype (little-endian, as torch writes on every platform we
# support).
_STORAGE_DTYPES = {
  "FloatStorage": np.float32,
  "DoubleStorage": np.float64,
  "HalfStorage": np.float16,
  "BFloat16Storage": None,
  "LongStorage": np.int64,
  "IntStorage": np.int32,
  "ShortStorage": np.int16,
  "CharStorage": np.int8,
  "ByteStorage": np.uint8,
  "BoolStorage": np.bool_,
}
# Magic number at the start of a legacy torch.save file.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class ScriptObject:
  """A TorchScript module or object: its type name (e.g. `__torch__.inceptionv3.Conv2dLayer`)
  and attributes (parameters as NumPy arrays, submodules as ScriptObjects, plain values)."""

  type_name = "ScriptObject"

  def __init__(self, attrs: Mapping[str, Any] | None = None):
    self.__dict__["attrs"] = dict(attrs or {})

  def __setstate__(self, state):
    # TorchScript pickles a module's attributes as one dict passed to BUILD; NEWOBJ made the
    # object without calling __init__.
    self.__dict__["attrs"] = dict(state)

  @property
  def attrs(self) -> dict[str, Any]:
    return self.__dict__.setdefault("attrs", {})

  def __getattr__(self, name: str) -> Any:
    try:
      return self.__dict__["attrs"][name]
    except KeyError:
      raise AttributeError(f"{self.type_name} has no attribute {name!r}") from None

  def __repr__(self) -> str:
    return f"ScriptObject({self.type_name}, {sorted(self.attrs)})"


_SCRIPT_CLASSES: dict[str, type] = {}


def _script_class(type_name: str) -> type:
  """A ScriptObject subclass per TorchScript type (pickle's NEWOBJ needs a class)."""
  if type_name not in _SCRIPT_CLASSES:
    _SCRIPT_CLASSES[type_name] = type("ScriptObject", (ScriptObject,), {"type_name": type_name})
  return _SCRIPT_CLASSES[type_name]


@dataclasses.dataclass(frozen=True)
class _StorageType:
  name: str

  @property
  def dtype(self) -> np.dtype:
    dtype = _STORAGE_DTYPES.get(self.name)
    if dtype is None:
      raise ValueError(f"unsupported tensor storage type torch.{self.name}")
    return np.dtype(dtype).newbyteorder("<")


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *unused) -> np.ndarray:
  """torch._utils._rebuild_tensor(_v2): a strided view of a flat storage, copied."""
  del unused  # requires_grad, backward hooks, metadata
  size, stride = tuple(size), tuple(stride)
  if not size:
    return storage[offset].copy()
  itemsize = storage.itemsize
  view = np.lib.stride_tricks.as_strided(
    storage[offset:], shape=size, strides=tuple(s * itemsize for s in stride)
  )
  return np.array(view)  # contiguous, native byte order, detached from the storage


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *unused):
  del requires_grad, backward_hooks, unused
  return data


def _ordered_dict(*args):
  return collections.OrderedDict(*args)


_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
  ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
  ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
  ("collections", "OrderedDict"): _ordered_dict,
  ("builtins", "set"): set,
  ("builtins", "frozenset"): frozenset,
  ("builtins", "slice"): slice,
  # TorchScript wraps typed lists of attributes (e.g. a conv's padding [0, 1]).
  ("torch.jit._pickle", "build_intlist"): list,
  ("torch.jit._pickle", "build_floatlist"): list,
  ("torch.jit._pickle", "build_boollist"): list,
  ("torch.jit._pickle", "build_tensorlist"): list,
  ("torch.jit._pickle", "build_genericlist"): list,
  ("torch.jit._pickle", "restore_type_tag"): lambda value, type_str: value,
}


class _Unpickler(pickle.Unpickler):
  """Resolves torch classes to NumPy rebuilders and storages through `load_storage`."""

  def __init__(self, file, load_storage: Callable[[_StorageType, str, int], np.ndarray]):
    super().__init__(file, encoding="utf-8")
    self._load_storage = load_storage

  def find_class(self, module: str, name: str):
    if module.startswith("__torch__"):
      return _script_class(f"{module}.{name}")
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if module == "torch" and name.endswith("Storage"):
      raise ValueError(f"unsupported tensor storage type torch.{name}")
    try:
      return _GLOBALS[(module, name)]
    except KeyError:
      raise pickle.UnpicklingError(
        f"the weight file refers to {module}.{name}, which this reader does not "
        "support (only tensors, TorchScript modules and plain containers)"
      ) from None

  def persistent_load(self, pid):
    # ("storage", storage_type, key, location, numel[, view_metadata]).
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
    if isinstance(storage_type, str):  # torch >= 2 may name the dtype directly
      storage_type = _StorageType(storage_type)
    return self._load_storage(storage_type, key, numel)


def _load_zip(path: str) -> Any:
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pickles:
      raise ValueError(f"{path} is a zip file but not a PyTorch archive (no <root>/data.pkl)")
    root = pickles[0].split("/")[0]
    cache: dict[str, np.ndarray] = {}

    def load_storage(storage_type: _StorageType, key: str, numel: int) -> np.ndarray:
      if key not in cache:
        raw = archive.read(f"{root}/data/{key}")
        cache[key] = np.frombuffer(raw, storage_type.dtype, count=numel)
      return cache[key]

    with archive.open(pickles[0]) as f:
      return _Unpickler(io.BytesIO(f.read()), load_storage).load()


def _load_legacy(path: str) -> Any:
  with open(path, "rb") as f:
    magic = pickle.load(f)
    if magic != _LEGACY_MAGIC:
      raise ValueError(f"{path} is neither a zip archive nor a legacy torch.save file")
    pickle.load(f)  # protocol version
    pickle.load(f)  # system info (endianness, type sizes)
    pending: dict[str, tuple[_StorageType, np.ndarray]] = {}

    def load_storage(storage_type: _StorageType, key: str, numel: int) -> np.ndarray:
      # Storages are stored after the object pickle; fill them in once they are read.
      if key not in pending:
        pending[key] = (storage_type, np.empty(numel, storage_type.dtype))
      return pending[key][1]

    _Unpickler(f, load_storage).load()  # fills `pending`; the object is rebuilt below
    keys = pickle.load(f)
    for key in keys:
      storage_type, buffer = pending[str(key)]
      (numel,) = struct.unpack("<q", f.read(8))
      data = np.frombuffer(f.read(numel * buffer.itemsize), storage_type.dtype, count=numel)
      if len(buffer) < numel:
        raise ValueError(f"{path}: storage {key} holds {numel} elements, {len(buffer)} expected")
      buffer[:numel] = data
  # Tensors were rebuilt (copied) from still-empty storages; rebuild them again now that the
  # storages are filled.
  return _load_legacy_second_pass(path, {k: v[1] for k, v in pending.items()})


def _load_legacy_second_pass(path: str, storages: Mapping[str, np.ndarray]) -> Any:
  with open(path, "rb") as f:
    for _ in range(3):
      pickle.load(f)
    return _Unpickler(f, lambda _, key, __: storages[key]).load()


def load(path: str) -> Any:
  """Loads a PyTorch weight file (TorchScript archive or `torch.save` file) without PyTorch.

  Args:
    path: the file.

  Returns:
    The pickled object with tensors as NumPy arrays and TorchScript modules as
    :class:`ScriptObject` (a `torch.save`d state dict comes back as an ordered dict of arrays).

  Raises:
    ValueError / pickle.UnpicklingError: the file is not a PyTorch weight file, or refers to
      classes other than tensors, modules and plain containers.
  """
  if zipfile.is_zipfile(path):
    return _load_zip(path)
  return _load_legacy(path)


def named_tensors(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
  """Flattens modules and dicts into {"a.b.weight": array}, like a PyTorch state dict."""
  out: dict[str, np.ndarray] = {}
  if isinstance(obj, np.ndarray):
    out[prefix.rstrip(".")] = obj
  elif isinstance(obj, ScriptObject):
    for key, value in obj.attrs.items():
      out.update(named_tensors(value, f"{prefix}{key}."))
  elif isinstance(obj, Mapping):
    for key, value in obj.items():
      out.update(named_tensors(value, f"{prefix}{key}."))
  return out


def named_modules(obj: Any, prefix: str = "") -> dict[str, ScriptObject]:
  """{"a.b": ScriptObject} of every module of a TorchScript archive, root under ""."""
  out: dict[str, ScriptObject] = {}
  if isinstance(obj, ScriptObject):
    out[prefix.rstrip(".")] = obj
    for key, value in obj.attrs.items():
      out.update(named_modules(value, f"{prefix}{key}."))
  return out
