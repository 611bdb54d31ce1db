"""Text data set: documents → train/valid/test text → tokens (cached) → fixed-length blocks of L tokens.

Splits are contiguous and deterministic: each document's last ``valid_fraction + test_fraction`` of characters
(cut at line breaks) is held out, valid before test, so no held-out text is seen in training, and the BPE
tokenizer is trained on the training parts only. Each part (with ``documents = "paragraphs"``: each paragraph of
it) is wrapped as [BOS] tokens [EOS]; a split's parts are concatenated and cut into blocks of L tokens (the tail
shorter than L is dropped).

Tokenized splits are cached once per (corpus, tokenizer, L, fractions) in ``cache_dir``
(default ``$PRIME_CACHE`` or ``~/.cache/prime``) as one safetensors file written atomically. The tokenizer is
stored in checkpoints (`checkpoint_meta`) and restored from them, so a checkpoint decodes without its corpus.

With ``prepared = DIR`` (a folder written by ``prime data prepare``, see `prepared`) nothing is tokenized or
cached: the tokenizer is the folder's, and each split is a lazy `WindowView` over the memory-mapped tokens
(``packing`` "wrap" or "pad"), so memory does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from prime_core import ByteLengths, Dataset, Presentation, PrimeError, TextPrompts, first_line

from .corpus import fingerprint, read_sources, split_text
from .prepared import PreparedCorpus, WindowView
from .tokenizer import tokenizer_class, tokenizer_from_json
from .words import WORD_VALIDITY_LABEL, completion_words, vocabulary, word_validity, words

SPLITS = ("train", "valid", "test")
#: ``data.options.documents``: the unit wrapped as [BOS] … [EOS]
DOCUMENTS = ("whole", "paragraphs")
#: a paragraph break: a line break, then at least one blank (or whitespace-only) line
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


def default_cache_dir() -> str:
    return os.environ.get("PRIME_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "prime")


class TextDataset(Dataset, Presentation, ByteLengths, TextPrompts):
    """Options: ``source`` ("austen" | path | folder | fsspec URL | list), ``tokenizer`` (any registered
    tokenizer: "bpe" (the default) | "bytes" | "gpt2" …), ``tokenizer_options`` (e.g. {vocab_size = 2048} or GPT-2
    file paths), ``length`` L, ``valid_fraction`` / ``test_fraction``, ``max_chars`` (use only the first
    characters of each document; 0 = all), ``cache_dir``; or ``prepared`` (a `prime data prepare` folder, instead
    of ``source``) with ``packing`` ("wrap": packed blocks with BOS/EOS between documents; "pad": one document
    per window, truncated to L and padded with EOS); ``documents``: what one [BOS] … [EOS] unit is, "whole" (each
    source document, the default) or "paragraphs" (each paragraph: text split on blank lines, so a model trained
    on L-token windows sees EOS often enough to learn to stop, `prime sample --stop-at-eos`). Nothing is read until
    the data is first needed."""

    name = "text"
    # Read (source) and written (cache_dir) locations; never taken from a checkpoint. source = "austen" is the
    # constructor default, the embedded corpus, a name rather than a location. tokenizer_options may hold gpt2
    # file paths, but those are read only to build a tokenizer for training, which a checkpoint's data set never
    # does (it decodes with the stored tokenizer or refuses).
    location_options = ("source", "cache_dir", "prepared")
    cache_options = ("cache_dir",)

    def __init__(self, source: str | list[str] = "austen", tokenizer: str | None = None,
                 tokenizer_options: dict | None = None, length: int = 128, valid_fraction: float = 0.05,
                 test_fraction: float = 0.05, max_chars: int = 0, cache_dir: str | None = None,
                 prepared: str | None = None, packing: str = "wrap", documents: str = "whole"):
        if not isinstance(length, int) or length < 2:
            raise ValueError(f"length L must be an integer ≥ 2, got {length!r}")
        if not (0 < valid_fraction < 0.5 and 0 < test_fraction < 0.5):
            raise ValueError("valid_fraction and test_fraction must lie in (0, 0.5)")
        self.source, self.length = source, length
        self.fractions = (float(valid_fraction), float(test_fraction))
        self.max_chars, self.cache_dir = int(max_chars), cache_dir or default_cache_dir()
        if prepared is not None and not isinstance(prepared, str):
            raise ValueError(f"prepared must be the path of a `prime data prepare` folder, got {prepared!r}")
        if prepared is not None and source != "austen":
            raise ValueError("give data.options.source or data.options.prepared, not both (a prepared folder "
                             "already holds its tokenized corpus)")
        if documents not in DOCUMENTS:
            raise ValueError(f"data.options.documents must be one of {', '.join(map(repr, DOCUMENTS))} (what one "
                             f"BOS … EOS unit is), got {documents!r}")
        if prepared is not None and documents != "whole":
            raise ValueError("data.options.documents applies to text sources; a prepared corpus keeps the "
                             "documents prime data prepare wrote")
        self.prepared, self.packing, self._corpus = prepared, packing, None
        self.documents = documents
        self._tokenizer_given = tokenizer is not None
        if prepared is not None and tokenizer_options:
            raise ValueError("data.options.tokenizer_options do not apply to a prepared corpus (its tokenizer is "
                             "stored in the folder); give them to prime data prepare --tokenizer-option")
        # any registered tokenizer; with `prepared` a placeholder until the folder's is read
        self.tokenizer = tokenizer_class(tokenizer or "bpe")(**(tokenizer_options or {}))
        self._trained = not self.tokenizer.needs_training
        self._for_checkpoint = False  # set by load_checkpoint_meta: never train a tokenizer then
        self._restored = False  # a checkpoint's stored tokenizer was restored
        self._splits: dict[str, torch.Tensor] | None = None
        self._bytes: dict[str, float] = {}
        self._vocab: frozenset[str] | None = None

    # sizes -------------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        if self.prepared is not None:
            return self._prepared_corpus().num_classes
        return self.tokenizer.vocab_size

    def _prepared_corpus(self) -> PreparedCorpus:
        """The prepared folder (sidecar read once); its tokenizer becomes this data set's, unless a checkpoint's
        stored tokenizer was restored, which must then be the very one the folder was tokenized with."""
        if self._corpus is None:
            corpus = PreparedCorpus(self.prepared)
            stored = _stored_tokenizer(corpus.meta["tokenizer"])
            if self._restored:
                if stored.to_json() != self.tokenizer.to_json():
                    raise PrimeError(_mismatch(self.prepared, stored, self.tokenizer))
            elif self._tokenizer_given and stored.name != self.tokenizer.name:
                raise PrimeError(f"data.options.tokenizer is {self.tokenizer.name!r} but the prepared corpus "
                                 f"{self.prepared} was tokenized with {stored.name!r}; leave tokenizer out")
            else:
                self.tokenizer, self._trained = stored, True
            self._corpus = corpus
        return self._corpus

    # checkpoint round trip -----------------------------------------------------------------------------------
    def checkpoint_meta(self) -> dict[str, Any]:
        if self.prepared is not None:
            self._prepared_corpus()
        self._ensure_tokenizer()
        return {"tokenizer": self.tokenizer.to_json()}

    def load_checkpoint_meta(self, meta: dict[str, Any]) -> None:
        self._for_checkpoint = True
        if "tokenizer" in meta:
            tok = _stored_tokenizer(meta["tokenizer"])
            if self._tokenizer_given and tok.name != self.tokenizer.name:
                raise PrimeError(f"the checkpoint's tokenizer is {tok.name!r} but data.options.tokenizer is "
                                 f"{self.tokenizer.name!r}")
            self.tokenizer, self._trained, self._splits, self._restored = tok, True, None, True

    # data ---------------------------------------------------------------------------------------------------
    def _documents(self):
        docs = read_sources(self.source)
        if self.max_chars:
            from .corpus import Document

            docs = [Document(d.name, d.text[: self.max_chars]) for d in docs]
        return docs

    def _parts(self):
        docs = self._documents()
        parts = {s: [] for s in SPLITS}
        for d in docs:
            for s, text in zip(SPLITS, split_text(d.text, self.fractions)):
                if text.strip():
                    parts[s].append(text)
        return docs, parts

    def _units(self, text: str) -> list[str]:
        """The [BOS] … [EOS] units of one split part: the part itself, or its paragraphs (cut at blank lines,
        which EOS BOS then stand for; whitespace-only paragraphs are dropped)."""
        if self.documents == "whole":
            return [text]
        return [p for p in PARAGRAPH_BREAK.split(text) if p.strip()]

    def _ensure_tokenizer(self, parts=None, docs=None) -> None:
        if self.prepared is not None and not self._restored:
            self._prepared_corpus()  # the folder's tokenizer (never trained here)
        if self._trained:
            return
        if self._for_checkpoint:  # a tokenizer trained now from whatever data is at hand is not the model's
            raise PrimeError(f"this checkpoint stores no {self.tokenizer.name} tokenizer, and prime never trains "
                             "one to read a checkpoint (it would not be the model's); its samples stay token ids")
        if parts is None:
            docs, parts = self._parts()
        key = self._key(docs, {"untrained": self.tokenizer.name, "options": getattr(self.tokenizer, "files", None),
                               "vocab": self.tokenizer.vocab_size})
        path = os.path.join(self.cache_dir, f"tokenizer-{key}.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                self.tokenizer = tokenizer_from_json(json.load(fh))
        else:
            self.tokenizer = self.tokenizer.trained(parts["train"])
            _atomic_write(path, json.dumps(self.tokenizer.to_json()).encode())
        self._trained = True

    def _key(self, docs, extra) -> str:
        h = hashlib.sha256(json.dumps({"corpus": fingerprint(docs), "L": self.length, "fractions": self.fractions,
                                       "extra": extra}, sort_keys=True, default=str).encode())
        return h.hexdigest()[:24]

    def _load(self) -> dict[str, torch.Tensor]:
        if self._splits is not None:
            return self._splits
        docs, parts = self._parts()
        self._ensure_tokenizer(parts, docs)
        tok = self.tokenizer
        units = {s: [u for text in parts[s] for u in self._units(text)] for s in SPLITS}
        extra = tok.to_json() if self.documents == "whole" else {**tok.to_json(), "documents": self.documents}
        key = self._key(docs, extra)  # "whole" keeps its earlier cache key
        path = os.path.join(self.cache_dir, f"blocks-{key}.safetensors")
        if os.path.isfile(path):
            data = load_file(path)
        else:
            data = {}
            for s in SPLITS:
                ids: list[int] = []
                bos = [] if tok.bos_id is None else [tok.bos_id]  # documents packed with BOS/EOS between them
                eos = [] if tok.eos_id is None else [tok.eos_id]
                for text in units[s]:
                    ids += [*bos, *tok.encode(text), *eos]
                n = len(ids) // self.length
                data[s] = torch.tensor(ids[: n * self.length], dtype=torch.long).view(n, self.length)
                # the bytes of the split's text as written: with paragraphs, EOS BOS stand for the blank lines
                # between them, so those bytes count too (bits per byte stays comparable with "whole")
                data[f"{s}_bytes"] = torch.tensor([sum(len(t.encode("utf-8")) for t in parts[s]), len(ids)],
                                                  dtype=torch.float64)
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
            os.makedirs(self.cache_dir, exist_ok=True)
            save_file(data, tmp)
            os.replace(tmp, path)
        for s in SPLITS:
            if data[s].shape[0] == 0:
                raise PrimeError(f"the {s} split of {self.source!r} is shorter than one block of L={self.length} "
                                 f"tokens ({int(data[f'{s}_bytes'][1])} tokens); use more text or a smaller "
                                 "data.options.length")
            if int(data[s].max()) >= self.num_classes:
                raise PrimeError(f"vocabulary mismatch: token id {int(data[s].max())} ≥ C={self.num_classes}")
        self._bytes = {s: float(data[f"{s}_bytes"][0] / data[f"{s}_bytes"][1]) for s in SPLITS}
        self._splits = {s: data[s] for s in SPLITS}
        return self._splits

    def split(self, name: str) -> torch.Tensor | WindowView:
        """[N, L] token ids: a tensor, or with ``prepared`` a `WindowView` read lazily (len, shape, indexing by
        LongTensor / slice → LongTensor)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {name!r}")
        if self.prepared is not None:
            corpus = self._prepared_corpus()
            return WindowView(corpus, name, self.length, self.packing, self.tokenizer.eos_id)
        if self.packing != "wrap":
            raise PrimeError(f"data.options.packing = {self.packing!r} needs a prepared corpus "
                             "(data.options.prepared = DIR from prime data prepare); text sources are packed (wrap)")
        return self._load()[name]

    def bytes_per_token(self, split: str) -> float | None:
        """UTF-8 bytes per token of the split (bits per byte = nats/token / (ln 2 · this)); None for packing "pad",
        whose windows hold truncated documents and padding."""
        if self.prepared is not None:
            info = self._prepared_corpus().split_info(split)
            return None if self.packing == "pad" else info["bytes"] / max(1, info["tokens"])
        self._load()
        return self._bytes[split]

    def describe(self) -> dict[str, Any]:
        if self.prepared is not None:
            return {**super().describe(), "prepared": self.prepared, "packing": self.packing,
                    "tokenizer": self.tokenizer.name}
        return {**super().describe(), "source": self.source, "tokenizer": self.tokenizer.name}

    def decode_samples(self, tokens: torch.Tensor) -> list[str]:
        self._ensure_tokenizer()
        return [self.tokenizer.decode(row.tolist()) for row in tokens]

    def score_samples(self, decoded: list[str], prompts: list[str | None] | None = None) -> list[dict]:
        """The word-validity fraction of the rows (`prime_plugin_text.words`): generated words found in the
        vocabulary of the training split's text. Needs the source text (not with a prepared corpus: [])."""
        if self.prepared is not None:
            return []
        prompts = prompts or [None] * len(decoded)
        generated = [words(t) if p is None else completion_words(p, t) for t, p in zip(decoded, prompts)]
        counts = word_validity(generated, self.training_vocabulary())
        return [{"name": "word_validity", "label": WORD_VALIDITY_LABEL, "value": counts.fraction,
                 "detail": f"{counts.valid} of {counts.total} generated words"}]

    def training_vocabulary(self) -> frozenset[str]:
        """V_train: the words of the training split's text (`prime_plugin_text.words.vocabulary`), once."""
        if self._vocab is None:
            self._vocab = vocabulary(self._parts()[1]["train"])
        return self._vocab

    # TextPrompts: prompts, infill templates and local text files, with the stored tokenizer ----------------------
    def encode_text(self, text: str) -> list[int]:
        """Ids of ``text`` such that decode(ids) == text; a tokenizer that cannot promise it is refused."""
        self._ensure_tokenizer()
        encode = getattr(self.tokenizer, "encode_text", self.tokenizer.encode)
        ids = encode(text)
        if self.tokenizer.decode(ids) != text:
            raise PrimeError(f"the {self.tokenizer.name} tokenizer does not reproduce this text exactly: "
                             f"{text[:40]!r}")
        return ids

    def decode_text(self, ids: list[int]) -> str:
        self._ensure_tokenizer()
        return self.tokenizer.decode([int(i) for i in ids])

    @property
    def bos_id(self) -> int | None:
        return self.tokenizer.bos_id

    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.eos_id


def _stored_tokenizer(data: Any):
    """A tokenizer from checkpoint metadata; anything malformed is a one-line `PrimeError`."""
    if not isinstance(data, dict):
        raise PrimeError(f"the checkpoint's tokenizer must be a JSON object, got {type(data).__name__}")
    try:
        return tokenizer_from_json(data)
    except PrimeError:
        raise
    except Exception as exc:  # HF tokenizers raises a bare Exception for malformed JSON
        raise PrimeError(f"the checkpoint's {data.get('name')!r} tokenizer is corrupt: {first_line(exc)}") from None


def _atomic_write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _mismatch(prepared: str, corpus_tok, checkpoint_tok) -> str:
    """One line naming both tokenizers (name and C) of a prepared corpus that a checkpoint cannot read."""
    theirs, ours = f"C={corpus_tok.vocab_size}", f"C={checkpoint_tok.vocab_size}"
    if corpus_tok.name == checkpoint_tok.name:  # same kind, other state (e.g. a BPE trained on other text)
        what = (f"another {corpus_tok.name} tokenizer than this checkpoint's (same name, other vocabulary: "
                f"{theirs} vs the checkpoint's {ours})")
    else:
        what = (f"the {corpus_tok.name} tokenizer ({theirs}), but this checkpoint's tokenizer is "
                f"{checkpoint_tok.name} ({ours})")
    return f"the prepared corpus {prepared} was tokenized with {what}; prepare it with the checkpoint's tokenizer"
