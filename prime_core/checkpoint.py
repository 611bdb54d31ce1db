"""Checkpoints: one safetensors file, tensors as safetensors and metadata as JSON in its header.

Read and written through fsspec URLs (plain paths, file://, memory://, and any protocol whose package is
installed). Writes are atomic: bytes go to a temporary name beside the target, then a rename. Loading never
unpickles. A missing, truncated, corrupt or foreign file raises `CheckpointError` with a one-line message.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import attrs
import fsspec
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import CheckpointError

FORMAT = "prime-checkpoint"
FORMAT_VERSION = 1
_META_KEY = "prime"


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
    try:
        with fsspec.open(url, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {url}") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint path is a directory, expected a .safetensors file: {url}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {url}: {exc}") from None
    meta = _header_meta(data, url)
    try:
        tensors = st_load(data)
    except Exception as exc:
        raise CheckpointError(f"corrupt checkpoint {url}: {str(exc).splitlines()[0]}") from None
    return Checkpoint(tensors, meta)


def _header_meta(data: bytes, url: str) -> dict[str, Any]:
    """Parse the safetensors header by hand, so a foreign or truncated file is named precisely."""
    if len(data) < 8:
        raise CheckpointError(f"not a prime checkpoint (file too short: {len(data)} bytes): {url}")
    size = int.from_bytes(data[:8], "little")
    if size <= 0 or size > len(data) - 8:
        raise CheckpointError(f"not a prime checkpoint (no safetensors header, or the file is truncated): {url}")
    try:
        header = json.loads(data[8:8 + size])
        meta = json.loads(header["__metadata__"][_META_KEY])
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"not a prime checkpoint (safetensors without prime metadata): {url}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"not a prime checkpoint (format {meta.get('format')!r}): {url}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format version {meta['format_version']} is newer than this prime-core "
                              f"supports ({FORMAT_VERSION}); upgrade prime-core: {url}")
    return meta


def checkpoint_exists(url: str) -> bool:
    fs, path = fsspec.core.url_to_fs(url)
    return fs.exists(path)
