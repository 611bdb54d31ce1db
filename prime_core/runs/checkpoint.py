"""Checkpoints: one safetensors file, tensors as safetensors and metadata as JSON in its header.

Read and written through fsspec URLs (plain paths, file://, memory://, and any protocol whose package is
installed). Writes are atomic: bytes go to a temporary name beside the target, then a rename. Loading never
unpickles. A missing, truncated, corrupt or foreign file raises `CheckpointError` with a one-line message.

Reading trusts nothing in the file: the 8-byte header length is capped (`MAX_HEADER_BYTES`) and checked against
the file size before the header is read; every tensor entry must be well formed with byte ranges that tile the
data section exactly; the file size must equal 8 + header + declared data (a longer or shorter file is refused);
and the declared data must fit in the memory available. Only then are the tensor bytes read, never more.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from typing import Any, BinaryIO

import attrs
import fsspec
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..device import available_memory
from ..errors import CheckpointError, first_line

FORMAT = "prime-checkpoint"
FORMAT_VERSION = 1
_META_KEY = "prime"
# A header larger than this is not a checkpoint's (ours are a few kB: tensor names, shapes and JSON metadata).
MAX_HEADER_BYTES = 100 * 2**20
# Bytes per element of each safetensors dtype that torch can hold.
_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
             "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


@attrs.define
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix/`` with the prefix removed (e.g. "model", "ema", "optim")."""
        p = prefix + "/"
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


def save_checkpoint(url: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    """Atomically write tensors + JSON metadata to ``url``; returns the url."""
    header = {_META_KEY: json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **meta}, sort_keys=True)}
    payload = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=header)
    fs, path = fsspec.core.url_to_fs(url)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open(tmp, "wb") as fh:
            fh.write(payload)
        fs.mv(tmp, path)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise
    return url


def read_checkpoint(url: str) -> Checkpoint:
    """Read a checkpoint without trusting it: the 8-byte header length, the header and the file size are checked
    (`_validated_header`) before any tensor byte is read, and no more bytes are read than the header declares."""
    fs, path = _filesystem(url)
    from ..fileio import cause_line, refused_connection

    try:
        info = fs.info(path)
    except (OSError, ValueError) as exc:  # fsspec's http reports a refused connection as FileNotFoundError too
        if refused_connection(exc):
            raise CheckpointError(f"cannot fetch checkpoint {url}: connection refused or host unreachable "
                                  f"({cause_line(exc)})") from None
        if isinstance(exc, FileNotFoundError):
            raise CheckpointError(f"checkpoint not found: {url}") from None
        raise CheckpointError(f"cannot read checkpoint {url}: {first_line(exc)}") from None
    if info.get("type") == "directory":
        raise CheckpointError(f"checkpoint path is a directory, expected a .safetensors file: {url}")
    if info.get("type") != "file":  # /dev/zero, a FIFO, a socket: no size to check the header against
        raise CheckpointError(f"checkpoint is not a regular file ({info.get('type')}): {url}")
    try:
        with _open(fs, path) as fh:
            return read_checkpoint_file(fh, int(info.get("size") or 0), url)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {url}: {first_line(exc)}") from None


def read_checkpoint_file(fh: BinaryIO, size: int, url: str = "<file>") -> Checkpoint:
    """Read a checkpoint from an open binary file of ``size`` bytes. Reads 8 bytes, then the declared header,
    then exactly the declared tensor bytes (each only after the previous part was checked), never more."""
    if size < 8:
        raise CheckpointError(f"not a prime checkpoint (file too short: {size} bytes): {url}")
    n = int.from_bytes(_read_exact(fh, 8, url), "little")
    if n < 2 or n > MAX_HEADER_BYTES or n > size - 8:
        raise CheckpointError(f"not a prime checkpoint (safetensors header length {n} is not in [2, "
                              f"{min(MAX_HEADER_BYTES, max(size - 8, 2))}] for a {size}-byte file): {url}")
    raw_header = _read_exact(fh, n, url)
    entries, metadata = _validated_header(raw_header, url)
    data_end = max((end for _, _, (_, end) in entries), default=0)
    if size != 8 + n + data_end:
        raise CheckpointError(f"not a prime checkpoint (the file has {size} bytes, its header declares "
                              f"{8 + n + data_end}; truncated or with trailing data): {url}")
    meta = _prime_meta(metadata, url)
    # the file's bytes and the tensors made from them coexist while loading
    check_memory(2 * data_end, f"loading checkpoint {url} needs")
    blob = b"".join([n.to_bytes(8, "little"), raw_header, *_read_chunks(fh, data_end, url)])
    try:
        tensors = st_load(blob)
    except Exception as exc:  # safetensors raises its own error type; the header was checked, so this is rare
        raise CheckpointError(f"corrupt checkpoint {url}: {first_line(exc)}") from None
    return Checkpoint(tensors, meta)


def _filesystem(url: str):
    """fsspec filesystem and path of ``url`` (`fileio.url_to_fs`, errors as `CheckpointError`)."""
    from ..fileio import url_to_fs

    return url_to_fs(url, f"checkpoint {url}", CheckpointError)


def _open(fs, path: str) -> BinaryIO:
    """The one place a checkpoint file is opened (tests wrap it to count the bytes read)."""
    return fs.open(path, "rb")


def _read_exact(fh: BinaryIO, n: int, url: str) -> bytes:
    return b"".join(_read_chunks(fh, n, url))


def _read_chunks(fh: BinaryIO, n: int, url: str) -> list[bytes]:
    """Exactly ``n`` bytes in chunks of at most 64 MiB (looping over short reads); fewer means the file shrank
    while being read."""
    chunks, left = [], n
    while left > 0:
        chunk = fh.read(min(left, 1 << 26))
        if not chunk:
            raise CheckpointError(f"checkpoint is truncated (ended {left} bytes early): {url}")
        chunks.append(chunk)
        left -= len(chunk)
    return chunks


def _validated_header(raw: bytes, url: str) -> tuple[list, dict]:
    """The safetensors header as [(name, (dtype, shape), (begin, end))] sorted by offset, plus its
    ``__metadata__``. Every tensor's byte range must equal numel × itemsize, and the ranges must tile the data
    section from 0 without gaps or overlaps, so the declared size is the exact size of the tensor bytes."""
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays, e.g. "[[[[…"
        raise CheckpointError(f"not a prime checkpoint (the safetensors header is not JSON): {url}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"not a prime checkpoint (the safetensors header is a JSON "
                              f"{type(header).__name__}, expected an object): {url}")
    metadata = header.pop("__metadata__", None)
    entries = [_tensor_entry(name, entry, url) for name, entry in header.items()]
    entries.sort(key=lambda e: e[2])
    pos = 0
    for name, _, (begin, end) in entries:
        if begin != pos:
            raise CheckpointError(f"corrupt checkpoint (tensor {name!r} starts at byte {begin}, expected {pos}: "
                                  f"tensor data must be contiguous): {url}")
        pos = end
    return entries, metadata


def _tensor_entry(name: str, entry: Any, url: str) -> tuple:
    """One header entry checked: {"dtype": known, "shape": [ints ≥ 0], "data_offsets": [begin, end]}."""
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"corrupt checkpoint (tensor {name!r}: {why}): {url}")

    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise bad("an entry needs exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in _ITEMSIZE:
        raise bad(f"dtype {dtype!r} is not one of {', '.join(_ITEMSIZE)}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise bad(f"shape {shape!r} is not a list of integers ≥ 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        raise bad(f"data_offsets {offsets!r} is not [begin, end] with 0 ≤ begin ≤ end")
    nbytes = math.prod(shape) * _ITEMSIZE[dtype]
    if offsets[1] - offsets[0] != nbytes:
        raise bad(f"{offsets[1] - offsets[0]} bytes declared, shape {shape} of {dtype} needs {nbytes}")
    return name, (dtype, shape), (offsets[0], offsets[1])


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _prime_meta(metadata: Any, url: str) -> dict[str, Any]:
    """The JSON object stored under ``__metadata__["prime"]``, with its format and version checked."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get(_META_KEY), str):
        raise CheckpointError(f"not a prime checkpoint (safetensors without prime metadata): {url}")
    try:
        meta = json.loads(metadata[_META_KEY])
    except (ValueError, RecursionError):
        raise CheckpointError(f"not a prime checkpoint (its prime metadata is not JSON): {url}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"not a prime checkpoint (its prime metadata is a JSON {type(meta).__name__}, "
                              f"expected an object): {url}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"not a prime checkpoint (format {meta.get('format')!r}): {url}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"checkpoint format_version must be an integer ≥ 1, got {version!r}: {url}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format version {version} is newer than this prime-core supports "
                              f"({FORMAT_VERSION}); upgrade prime-core: {url}")
    return meta


def check_memory(nbytes: int, what: str) -> None:
    """Refuse work whose ``nbytes`` exceed the memory available now, before allocating any of it; the message is
    ``what`` followed by the sizes."""
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise CheckpointError(f"{what} {nbytes / 2**30:.1f} GiB, more than the {avail / 2**30:.1f} GiB of memory "
                              f"available")


def checkpoint_exists(url: str) -> bool:
    fs, path = _filesystem(url)
    return fs.exists(path)


def check_finite(tensors: dict[str, torch.Tensor], url: str, group: str = "") -> None:
    """Refuse a checkpoint whose floating-point tensors hold NaN or ±inf, naming the first such tensor: a model
    with such weights yields NaN likelihoods (printed as "PPL ≤ nan") and invalid token ids. One `isfinite`
    reduction per tensor, on the tensors already in memory. ``group``: the tensor group they came from ("model"),
    so the message names the tensor as the file does."""
    for name, t in tensors.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            bad = t[~torch.isfinite(t)]
            kinds = sorted({"nan" if math.isnan(float(v)) else ("inf" if float(v) > 0 else "-inf")
                            for v in bad[:1000].flatten().real})
            raise CheckpointError(f"checkpoint {url}: tensor {(group + '/' if group else '') + name!r} holds {bad.numel()} non-finite value(s) "
                                  f"({', '.join(kinds)}); a usable checkpoint has finite weights only")
