"""Read a ``torch.save`` file (zip: ``*/data.pkl`` + ``*/data/<key>`` storages) without running pickled code.

`read_torch_file` unpickles ``data.pkl`` with `RestrictedUnpickler`, whose ``find_class`` never imports a module:

- tensors: ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` and the ``torch.*Storage`` types are
  answered by this module's own functions, which build a `TensorRef` (storage key, dtype, offset, size,
  stride) — bytes are read from the zip only when `TensorRef.load` is called, and checked against the
  storage's declared size;
- plain containers: ``collections.OrderedDict`` (a dict), ``builtins.set`` / ``frozenset``, and bytes in the
  two forms protocol 2 writes them (``_codecs.encode(str, "latin1")`` and ``bytes()``), nothing else of either;
- an allow-list of inert records (`INERT_MODULES`: OmegaConf / Hydra config nodes, ``typing``, enum values,
  ``transformers`` / ``tokenizers`` objects, Lightning bookkeeping, numpy scalars): a `Record` class per name,
  which stores the arguments and state it is given and never constructs, imports or calls anything;
- any other global (``os.system``, ``builtins.eval``, ``subprocess.*``, ``functools.partial``, …) stops the
  read with `UnsafeCheckpointError`, naming it. Nothing from the file has run by then: a ``__reduce__`` payload
  is a GLOBAL followed by REDUCE, and the GLOBAL is refused before its REDUCE is reached.

Limits (a 720-byte file must not cost minutes and gigabytes): ``data.pkl`` may declare at most
`MAX_PICKLE_BYTES`; before it is unpickled, `scan_pickle` walks its opcodes (never building anything) and
refuses more than `MAX_PICKLE_OPS` operations (every object of the file is made by one) or marks nested
deeper than `MAX_PICKLE_DEPTH`. A pickle may share one object many times (memo ``GET``); what is
shared stays shared when unpickled, and `to_plain`, which copies, first computes the size of the copy once per
distinct object (`expanded_size`) and refuses more than `MAX_PLAIN_VALUES` values or a nesting deeper than
`MAX_PLAIN_DEPTH` — so 40 levels of ``[a, a]`` (2⁴⁰ values when expanded) are refused after 40 steps, in
milliseconds; while copying it counts again, so the limits hold whatever the estimate.

`to_plain` turns records into plain data: an OmegaConf DictConfig / ListConfig into a dict / list of its node
values, any other record into a dict of what it recorded.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import pickletools
import reprlib
import zipfile
from typing import Any

import attrs
import torch

from prime_core import CheckpointError

#: Module prefixes whose globals are read as inert `Record`s (configs, tokenizers, trainer bookkeeping; ``re``
#: for a tokenizer's compiled patterns, ``collections`` for e.g. a defaultdict — recorded, never compiled or built).
INERT_MODULES = ("omegaconf", "hydra", "typing", "enum", "transformers", "tokenizers", "lightning",
                 "pytorch_lightning", "lightning_fabric", "numpy", "pathlib", "datetime", "argparse",
                 "torchmetrics", "copyreg", "re", "collections")
#: Builtin names allowed as type references (recorded, never called): e.g. OmegaConf's ``object_type=dict``.
INERT_BUILTINS = {"dict", "list", "tuple", "int", "float", "str", "bool", "object", "NoneType", "type"}
#: Size of ``data.pkl`` (the object graph; tensor bytes are separate members): a Lightning checkpoint's is
#: ~10²–10³ kB (names, hyper-parameters, optimizer bookkeeping).
MAX_PICKLE_BYTES = 64 * 2**20
#: Pickle operations in ``data.pkl`` (each makes at most one object); a released checkpoint has ~10⁴–10⁵.
MAX_PICKLE_OPS = 500_000
#: Open marks of the unpickler (tuples / lists / dicts being built inside one another).
MAX_PICKLE_DEPTH = 1_000
#: Values `to_plain` may make (shared references expanded) and how deeply it may nest; a hyper-parameter
#: tree has ~10²–10³ values and a depth ~10.
MAX_PLAIN_VALUES = 100_000
MAX_PLAIN_DEPTH = 200
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class UnsafeCheckpointError(CheckpointError):
    """The file references a global outside the allow-list (nothing of it was executed)."""


# --------------------------------------------------------------------------------------------- records
class Record:
    """An inert stand-in for an object of the class named ``qualname``: REDUCE / NEWOBJ arguments go to
    ``args``, BUILD state to ``state``, appended / set items to ``items``. Never runs anything of the file."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, {}

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items = args, kwargs, None, {}
        return obj

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.items[len(self.items)] = value

    def extend(self, values):
        for v in values:
            self.append(v)

    def __repr__(self):
        return f"Record({self.qualname})"


def _record_class(qualname: str) -> type[Record]:
    return type(qualname.rsplit(".", 1)[-1], (Record,), {"qualname": qualname, "__module__": __name__})


# --------------------------------------------------------------------------------------------- tensors
@attrs.frozen
class StorageRef:
    archive: zipfile.ZipFile = attrs.field(eq=False, repr=False)
    prefix: str
    key: str
    dtype: torch.dtype
    numel: int

    def read(self) -> torch.Tensor:
        """The storage's elements as a 1-D tensor; its byte count must equal numel × itemsize."""
        name = f"{self.prefix}data/{self.key}"
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        try:
            declared = self.archive.getinfo(name).file_size  # checked before reading (no zip bombs)
            raw = self.archive.read(name) if declared == self.numel * itemsize else b""
        except (KeyError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointError(f"tensor storage {self.key} is missing or corrupt in the file ({exc})") from None
        if len(raw) != self.numel * itemsize:
            raise CheckpointError(f"tensor storage {self.key} holds {declared} bytes, its record declares "
                                  f"{self.numel} × {itemsize}")
        return torch.frombuffer(bytearray(raw), dtype=self.dtype) if raw else torch.empty(0, dtype=self.dtype)


@attrs.frozen
class TensorRef:
    """A tensor of the file, read only on `load` (shape known before)."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def load(self) -> torch.Tensor:
        flat = self.storage.read()
        need = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) + 1 if all(self.shape) else 0
        if need > flat.numel():
            raise CheckpointError(f"a tensor of shape {list(self.shape)} reaches past its storage "
                                  f"({flat.numel()} elements)")
        return torch.as_strided(flat, self.shape, self.stride, self.offset).clone()


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, *unused) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise CheckpointError("a tensor record in the file has no storage")
    try:
        shape, strides, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
    except (TypeError, ValueError):
        raise CheckpointError("a tensor record in the file has a malformed size or stride") from None
    if len(shape) != len(strides) or min((offset, *shape, *strides)) < 0:
        raise CheckpointError(f"a tensor record in the file has an invalid size {shape} / stride {strides}")
    return TensorRef(storage, offset, shape, strides)


def _rebuild_parameter(data, *unused):
    return data


def _latin1_bytes(text, encoding="latin1"):
    """Protocol-2 pickles store bytes as _codecs.encode(str, "latin1"): only that form is rebuilt."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("refused: _codecs.encode in the file is used for something other than bytes")
    return text.encode("latin1")


def _empty_bytes(*args):
    """Protocol-2 pickles store b"" as bytes(): only the empty call is rebuilt (bytes(n) would allocate n)."""
    if args:
        raise CheckpointError("refused: builtins.bytes in the file is called with arguments")
    return b""


_SAFE_GLOBALS = {("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
                  ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
                  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
                  ("_codecs", "encode"): _latin1_bytes,
                  ("builtins", "bytes"): _empty_bytes}


# --------------------------------------------------------------------------------------------- limits
_MARK, _TO_MARK, _STOP = 1, 2, 3


def _opcode_table() -> list:
    """opcode byte → (kind: _MARK / _TO_MARK (pops down to a mark) / _STOP / 0, fixed argument length or -1,
    argument descriptor), from pickletools' descriptions; None for a byte that is no opcode."""
    table: list = [None] * 256
    for op in pickletools.opcodes:
        kind = (_MARK if op.name == "MARK" else _STOP if op.name == "STOP"
                else _TO_MARK if pickletools.markobject in op.stack_before else 0)
        fixed = 0 if op.arg is None else op.arg.n if op.arg.n >= 0 else -1
        table[op.code.encode("latin1")[0]] = (kind, fixed, op.arg)
    return table


_OPCODES = _opcode_table()
#: bytes of the length prefix of each length-prefixed argument kind (pickletools' TAKEN_FROM_ARGUMENT*)
_PREFIX = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
           pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}


def _skip_argument(data: bytes, pos: int, arg) -> int:
    """The position after a variable-length opcode argument ``arg`` that starts at ``pos`` (nothing decoded)."""
    if arg.n == pickletools.UP_TO_NEWLINE:  # GLOBAL / INST hold two lines (module, name)
        for _ in range(2 if arg.name == "stringnl_noescape_pair" else 1):
            end = data.find(b"\n", pos)
            if end < 0:
                raise CheckpointError("the pickle is truncated (a line argument has no end)")
            pos = end + 1
        return pos
    width = _PREFIX[arg.n]
    length = int.from_bytes(data[pos:pos + width], "little", signed=arg.n == pickletools.TAKEN_FROM_ARGUMENT4)
    if length < 0:  # BINSTRING's length is signed: a negative one would walk backwards
        raise CheckpointError("the pickle is corrupt (an argument of negative length)")
    return pos + width + length


def scan_pickle(data: bytes, what: str = "the file's pickle") -> int:
    """Walk the opcodes of ``data`` without building anything; refuse more than `MAX_PICKLE_OPS` operations or
    more than `MAX_PICKLE_DEPTH` open marks (containers being built inside containers). Returns the number of
    operations. Unknown opcodes and truncation are left to the unpickler, which reports them.

    The stack itself is bounded by the operations (a flat list of n items puts n on it, in batches of 1000);
    how deeply the built objects nest is bounded where they are walked (`to_plain`, `MAX_PLAIN_DEPTH`), since
    a pickle can also nest bottom-up through its memo without any mark."""
    pos, ops, marks, n, table = 0, 0, 0, len(data), _OPCODES
    while pos < n:
        entry = table[data[pos]]
        if entry is None:
            break
        kind, fixed, arg = entry
        ops += 1
        if ops > MAX_PICKLE_OPS:
            raise CheckpointError(f"refused: {what} holds more than {MAX_PICKLE_OPS:,} objects (pickle "
                                  "operations); a released checkpoint has far fewer. Nothing in it was executed")
        if kind == _MARK:
            marks += 1
            if marks > MAX_PICKLE_DEPTH:
                raise CheckpointError(f"refused: {what} nests objects more than {MAX_PICKLE_DEPTH} deep; a "
                                      "released checkpoint nests far less. Nothing in it was executed")
        elif kind == _TO_MARK:
            marks -= 1 if marks else 0
        elif kind == _STOP:
            break
        pos += 1 + fixed if fixed >= 0 else 0
        if fixed < 0:
            pos = _skip_argument(data, pos + 1, arg)
    return ops


# --------------------------------------------------------------------------------------------- unpickler
class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose globals come from the tables above; see the module docstring."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix
        self.records: dict[str, type[Record]] = {}

    def find_class(self, module: str, name: str):
        # Python 2 names of protocol-2 pickles (__builtin__ → builtins), mapped as pickle's fix_imports does
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "builtins" and name in ("set", "frozenset"):
            return {"set": set, "frozenset": frozenset}[name]
        qualname = f"{module}.{name}"
        if module.split(".")[0] in INERT_MODULES or (module == "builtins" and name in INERT_BUILTINS):
            return self.records.setdefault(qualname, _record_class(qualname))
        raise UnsafeCheckpointError(f"refused: the file's pickle references {qualname}, which is not an allowed "
                                    "type (tensors, numbers, strings, containers and inert config / tokenizer / "
                                    "trainer records); nothing in it was executed")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise CheckpointError(f"unsupported tensor storage record in the file: {reprlib.repr(pid)}")
        _, kind, key, _location, numel = pid
        return StorageRef(self.archive, self.prefix, str(key), kind.dtype, int(numel))


def read_torch_file(path: str) -> tuple[Any, zipfile.ZipFile]:
    """The unpickled object of a torch.save zip file (tensors as `TensorRef`) and the open archive."""
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path} is not a torch.save zip archive ({exc}); only that format is read "
                              "(legacy or foreign pickles are refused)") from None
    pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise CheckpointError(f"{path} is a zip file but not a torch.save archive (expected one */data.pkl)")
    prefix = pkl[0][: -len("data.pkl")]
    order = _member(archive, prefix + "byteorder")
    if order not in (None, b"little"):
        raise CheckpointError(f"{path} was written on a {order!r}-endian machine; only little-endian is read")
    declared = archive.getinfo(pkl[0]).file_size  # checked before reading: no zip bomb in data.pkl
    if declared > MAX_PICKLE_BYTES:
        raise CheckpointError(f"{path}: its data.pkl declares {declared:,} bytes, more than the "
                              f"{MAX_PICKLE_BYTES:,} allowed (the object graph of a released checkpoint is far "
                              "smaller; tensors are stored apart)")
    data = _member(archive, pkl[0])
    scan_pickle(data, f"{path}'s pickle")
    try:
        return RestrictedUnpickler(data, archive, prefix).load(), archive
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise CheckpointError(f"{path}: the pickle is corrupt or truncated ({type(exc).__name__}: {exc})") from None


def _member(archive: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        return archive.read(name)
    except KeyError:
        return None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # truncated: CRC or size mismatch
        raise CheckpointError(f"the archive member {name} is corrupt or truncated ({exc})") from None


# --------------------------------------------------------------------------------------------- plain data
class _Budget:
    """What `to_plain` may still make: values (shared references expanded: each use counts) and nesting. The
    containers being walked are kept in ``active`` (ids), which also finds cycles."""

    def __init__(self, values: int = MAX_PLAIN_VALUES):
        self.left, self.active = values, set()

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise CheckpointError(f"refused: the file's hyper-parameters expand to more than {MAX_PLAIN_VALUES:,} "
                                  "values (shared references repeated); a released checkpoint has far fewer. "
                                  "Nothing in it was executed")
        if len(self.active) >= MAX_PLAIN_DEPTH:
            raise CheckpointError(f"refused: the file's hyper-parameters nest more than {MAX_PLAIN_DEPTH} deep; a "
                                  "released checkpoint nests far less. Nothing in it was executed")


def _children(obj: Any) -> list:
    if isinstance(obj, Record):
        return [*obj.args, obj.state, *obj.items.values()]
    if isinstance(obj, dict):
        return list(obj.values())
    return list(obj) if isinstance(obj, (list, tuple)) else []


def expanded_size(obj: Any, limit: int = MAX_PLAIN_VALUES) -> int:
    """How many values ``obj`` holds with shared references counted at each use (what a copy makes), computed
    once per distinct object (so 40 levels of ``[a, a]`` cost 40 steps, not 2⁴⁰); stops once over ``limit``.
    Records count all they recorded (at least what `to_plain` keeps); a reference back into itself counts 1."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(x: Any, depth: int) -> int:
        key = id(x)
        if key in sizes:
            return sizes[key]
        if key in active or not isinstance(x, (Record, dict, list, tuple)):
            return 1
        if depth > MAX_PLAIN_DEPTH:
            raise CheckpointError(f"refused: the file's hyper-parameters nest more than {MAX_PLAIN_DEPTH} deep; a "
                                  "released checkpoint nests far less. Nothing in it was executed")
        active.add(key)
        total = 1
        for child in _children(x):
            total += size(child, depth + 1)
            if total > limit:
                break
        active.discard(key)
        sizes[key] = total
        return total

    return size(obj, 0)


def to_plain(obj: Any, _budget: _Budget | None = None) -> Any:
    """Records → plain data: DictConfig → dict, ListConfig → list, value nodes → their value, other records →
    {"__type__": qualname, ...recorded}; containers recursively (a reference back into itself becomes the string
    "<cycle>"); TensorRefs are kept. At most `MAX_PLAIN_VALUES` values, `MAX_PLAIN_DEPTH` deep (`_Budget`)."""
    if _budget is None and expanded_size(obj) > MAX_PLAIN_VALUES:  # refused in milliseconds, before copying
        _Budget(0).spend()
    budget = _budget or _Budget()
    if not isinstance(obj, (Record, dict, list, tuple)):
        budget.spend()
        return obj
    key = id(obj)
    if key in budget.active:
        return "<cycle>"
    budget.spend()
    budget.active.add(key)
    try:
        if isinstance(obj, Record):
            return _record_to_plain(obj, budget)
        if isinstance(obj, dict):
            return {k: to_plain(v, budget) for k, v in obj.items()}
        return type(obj)(to_plain(v, budget) for v in obj)
    finally:
        budget.active.discard(key)


def _record_to_plain(rec: Record, budget: _Budget) -> Any:
    name, state = rec.qualname, rec.state if isinstance(rec.state, dict) else {}
    if name.startswith("omegaconf.") and "_content" in state:  # DictConfig / ListConfig (None, "???" kept)
        return to_plain(state["_content"], budget)
    if name.startswith("omegaconf.") and "_val" in state:  # a value node
        return to_plain(state["_val"], budget)
    if rec.items and not rec.args and not state:  # a dict subclass, e.g. Lightning's AttributeDict
        return to_plain(rec.items, budget)
    return {"__type__": name, "args": to_plain(list(rec.args), budget), "state": to_plain(rec.state, budget),
            **({"items": to_plain(rec.items, budget)} if rec.items else {})}


__all__ = ["INERT_MODULES", "MAX_PICKLE_BYTES", "MAX_PICKLE_DEPTH", "MAX_PICKLE_OPS", "MAX_PLAIN_DEPTH",
           "MAX_PLAIN_VALUES", "Record", "expanded_size", "RestrictedUnpickler", "TensorRef", "UnsafeCheckpointError", "read_torch_file",
           "scan_pickle", "to_plain"]
