"""A prepared corpus (written by ``prime data prepare``) read lazily: memory-mapped token files and window views.

Layout of a prepared folder DIR (format version 1):

- ``prepared.json`` — the sidecar, written last (its presence means the folder is complete): tokenizer (name and
  `to_json` state), C, the token dtype (uint16 when C ≤ 65,536, else uint32), per split the number of tokens,
  documents and UTF-8 bytes, the split rule, the sources' fingerprints.
- ``{split}.bin`` — the split's token stream: every document as [BOS] tokens [EOS] (when the tokenizer has them),
  concatenated, as a flat numpy memmap.
- ``{split}.docs.npy`` — int64 offsets [D + 1]: document d occupies stream[offsets[d] : offsets[d+1]].

Two views of a split as sequences of L tokens (`WindowView`, option ``packing``):

- ``wrap`` (the paper's OpenWebText setup): the stream cut into ⌊N / L⌋ consecutive blocks; documents run across
  block boundaries, BOS/EOS mark where they meet. Every position is real text or a separator.
- ``pad``: one window per document, its first L tokens, the rest filled with EOS. Every position is scored, so a
  bound on −log p_θ(window) is a bound on the NLL of the document truncated to L tokens followed by EOS padding
  (a fixed, invertible function of the truncated document, so still a valid bound for it); per-token figures
  divide by L and count the pads, so they are not comparable with ``wrap`` and no bits-per-byte is given.

Only the rows asked for are read: indexing a view by n window ids reads n·L tokens, one positional read
(``os.pread``) per window from the token file. Reading through the mapping instead would add every touched page
(with the kernel's large page-cache folios, up to 2 MB per random window) to the process's resident memory, which
would then grow with the corpus over a run; positional reads leave the pages in the shared page cache only.
`PreparedCorpus.tokens` still gives the whole stream as a numpy memmap, for inspection.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from prime_core import PrimeError

FORMAT = "prime-prepared-tokens"
FORMAT_VERSION = 1
SIDECAR = "prepared.json"
PACKINGS = ("wrap", "pad")


def token_dtype(num_classes: int) -> np.dtype:
    """uint16 when every id < C fits (C ≤ 65,536), else uint32."""
    return np.dtype(np.uint16) if num_classes <= 1 << 16 else np.dtype(np.uint32)


def tokens_path(directory: str, split: str) -> str:
    return os.path.join(directory, f"{split}.bin")


def offsets_path(directory: str, split: str) -> str:
    return os.path.join(directory, f"{split}.docs.npy")


class PreparedCorpus:
    """The sidecar of DIR, checked; the token files are opened (memory-mapped) on first use."""

    def __init__(self, directory: str):
        self.directory = directory
        self.meta = _read_sidecar(directory)
        self.dtype = np.dtype(self.meta["dtype"])
        self._tokens: dict[str, np.memmap] = {}
        self._offsets: dict[str, np.ndarray] = {}
        self._files: dict[str, Any] = {}

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def splits(self) -> dict[str, dict[str, Any]]:
        return self.meta["splits"]

    def split_info(self, split: str) -> dict[str, Any]:
        if split not in self.splits:
            raise PrimeError(f"the prepared corpus {self.directory} has no {split!r} split (it has "
                             f"{', '.join(self.splits)}); prepare it with --split train=…,{split}=…")
        return self.splits[split]

    def _checked_path(self, split: str) -> str:
        info, path = self.split_info(split), tokens_path(self.directory, split)
        expected = int(info["tokens"]) * self.dtype.itemsize
        size = os.path.getsize(path) if os.path.isfile(path) else -1
        if size != expected:
            raise PrimeError(f"prepared corpus file {path} has {size} bytes, the sidecar says {expected}: the "
                             "folder is incomplete or was changed; prepare it again with --force")
        return path

    def tokens(self, split: str) -> np.ndarray:
        """The split's token stream as a read-only memmap (nothing is read until rows are indexed)."""
        if split not in self._tokens:
            self._tokens[split] = np.memmap(self._checked_path(split), dtype=self.dtype, mode="r",
                                            shape=(int(self.split_info(split)["tokens"]),))
        return self._tokens[split]

    def read(self, split: str, start: int, stop: int) -> np.ndarray:
        """Tokens stream[start:stop] of a split, by one positional read (thread-safe; no mapping)."""
        if split not in self._files:
            self._files[split] = open(self._checked_path(split), "rb", buffering=0)
        size = self.dtype.itemsize
        data = os.pread(self._files[split].fileno(), (stop - start) * size, start * size)
        return np.frombuffer(data, dtype=self.dtype)

    def offsets(self, split: str) -> np.ndarray:
        """Document offsets [D + 1] into the stream (memory-mapped .npy; never unpickled)."""
        if split not in self._offsets:
            path = offsets_path(self.directory, split)
            try:
                off = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise PrimeError(f"cannot read {path} ({type(exc).__name__}); prepare the corpus again") from None
            info = self.split_info(split)
            if off.shape != (int(info["documents"]) + 1,) or off.dtype != np.int64:
                raise PrimeError(f"{path} does not match the sidecar ({off.shape} {off.dtype}); prepare again")
            self._offsets[split] = off
        return self._offsets[split]


def _read_sidecar(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, SIDECAR)
    if os.path.isfile(directory):
        raise PrimeError(f"data.options.prepared must be a folder made by `prime data prepare`; {directory} is a file")
    if not os.path.isfile(path):
        raise PrimeError(f"{directory} is not a prepared corpus (no {SIDECAR}; an interrupted `prime data prepare` "
                         "leaves none): run prime data prepare SOURCE --out DIR")
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as exc:
        raise PrimeError(f"cannot read {path}: {type(exc).__name__}; prepare the corpus again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PrimeError(f"{path} is not a prime prepared-corpus sidecar (format {FORMAT!r} expected)")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise PrimeError(f"{path} has format_version {version!r}; this prime reads ≤ {FORMAT_VERSION}: upgrade "
                         "prime-plugin-text or prepare the corpus again")
    for key in ("tokenizer", "num_classes", "dtype", "splits"):
        if key not in meta:
            raise PrimeError(f"{path} lacks {key!r}; prepare the corpus again")
    if np.dtype(meta["dtype"]) != token_dtype(int(meta["num_classes"])):
        raise PrimeError(f"{path}: dtype {meta['dtype']} does not fit C={meta['num_classes']}")
    return meta


class WindowView:
    """A split as N windows of L tokens, read on demand. ``view[ids]`` (LongTensor / int list / slice / int) →
    int64 tensor [n, L] (an int gives [L]); ``len(view)`` = N; ``view.shape`` = (N, L). Ids ≥ C in the file are
    refused when read (cheap: only the rows read are checked)."""

    def __init__(self, corpus: PreparedCorpus, split: str, length: int, packing: str, pad_id: int | None):
        if packing not in PACKINGS:
            raise PrimeError(f"data.options.packing must be one of {', '.join(PACKINGS)}, got {packing!r}")
        if packing == "pad" and pad_id is None:
            raise PrimeError("packing = 'pad' needs a tokenizer with an end-of-document id (EOS) to pad with")
        self.corpus, self.split, self.length, self.packing, self.pad_id = corpus, split, length, packing, pad_id
        info = corpus.split_info(split)
        self._n = int(info["tokens"]) // length if packing == "wrap" else int(info["documents"])
        if self._n == 0:
            raise PrimeError(f"the {split} split of {corpus.directory} is shorter than one window of L={length} "
                             f"tokens ({info['tokens']} tokens); prepare more text or use a smaller "
                             "data.options.length")

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int, int]:
        return (self._n, self.length)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, (int, np.integer)):
            return self[torch.tensor([int(key)])][0]
        ids = torch.arange(self._n)[key] if isinstance(key, slice) else torch.as_tensor(key, dtype=torch.long)
        ids = ids.reshape(-1)
        if ids.numel() and (int(ids.min()) < -self._n or int(ids.max()) >= self._n):
            raise IndexError(f"window id out of range for {self._n} windows")
        ids = torch.where(ids < 0, ids + self._n, ids).numpy()
        rows = self._wrap(ids) if self.packing == "wrap" else self._pad(ids)
        out = torch.from_numpy(rows.astype(np.int64, copy=False))
        if out.numel() and int(out.max()) >= self.corpus.num_classes:
            raise PrimeError(f"prepared corpus {self.corpus.directory}: token id {int(out.max())} ≥ "
                             f"C={self.corpus.num_classes} in the {self.split} split; the file is corrupt")
        return out

    def _wrap(self, ids: np.ndarray) -> np.ndarray:
        corpus, length = self.corpus, self.length
        out = np.empty((len(ids), length), dtype=corpus.dtype)
        for r, i in enumerate(ids.tolist()):  # one contiguous read per window
            out[r] = corpus.read(self.split, i * length, (i + 1) * length)
        return out

    def _pad(self, ids: np.ndarray) -> np.ndarray:
        corpus, off, length = self.corpus, self.corpus.offsets(self.split), self.length
        out = np.full((len(ids), length), self.pad_id, dtype=corpus.dtype)
        for r, d in enumerate(ids.tolist()):
            a, b = int(off[d]), int(off[d + 1])
            b = min(b, a + length)
            out[r, : b - a] = corpus.read(self.split, a, b)
        return out

    def __repr__(self) -> str:
        return f"WindowView({self.corpus.directory!r}, {self.split!r}, N={self._n}, L={self.length}, {self.packing})"
