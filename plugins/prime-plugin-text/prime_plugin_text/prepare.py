"""``prime data prepare``: sources → documents → train/valid/test by document → tokens in memory-mapped files.

Sources are local files, folders (every file below, sorted), globs and fsspec URLs. A file is read by its suffix:
``.jsonl`` / ``.json`` / ``.parquet`` / ``.arrow`` through HF `datasets` (one document per row, the text in
``text_field``; the optional extra ``prime-plugin-text[data]``), anything else as UTF-8 text, one document per
file (or per paragraph / line with ``text_unit``).

Split rule (deterministic, by document): u = the first 8 bytes of sha256(UTF-8 text) read as an integer / 2⁶⁴,
so u ∈ [0, 1); with the fractions in order (train, valid, test), a document goes to the first split whose
cumulative fraction exceeds u. Identical documents land in the same split (no train/test leak through
duplicates). A tokenizer that learns (BPE) is trained on the train split only.

Output (see `prepared`): per split ``{split}.bin`` (uint16 when C ≤ 65,536, else uint32) and ``{split}.docs.npy``,
then ``prepared.json`` last. Everything is written under ``DIR/.prepare-tmp`` and renamed into DIR at the end, so
an interrupted run leaves no file a reader would take for a corpus; a re-run removes that folder and restarts.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from typing import Any, Iterable, Iterator

import attrs
import fsspec
import numpy as np
from tqdm.auto import tqdm

from prime_core import PrimeError, first_line

from .corpus import _decode
from .prepared import FORMAT, FORMAT_VERSION, SIDECAR, offsets_path, token_dtype, tokens_path
from .tokenizer import tokenizer_class, tokenizer_from_json

SPLIT_NAMES = ("train", "valid", "test")
TABULAR = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".arrow": "arrow"}
TEXT_UNITS = ("file", "paragraph", "line")
WORK = ".prepare-tmp"
DEFAULT_SPLIT = "train=0.98,valid=0.01,test=0.01"
DATA_EXTRA = "reading JSON-lines / Parquet / Arrow needs HF datasets: pip install 'prime-plugin-text[data]'"


@attrs.frozen
class Source:
    """One input file: its fsspec URL (or local path) and how it is read ("text" or a `datasets` builder)."""

    url: str
    kind: str


# ------------------------------------------------------------------------------------------------ options
def parse_split(text: str) -> dict[str, float]:
    """``"train=0.98,valid=0.01,test=0.01"`` → fractions in that order; names from train/valid/test, train first,
    each in (0, 1], summing to 1 (±1e-9)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in SPLIT_NAMES or name in out:
            raise PrimeError(f"--split {text!r}: each part must be NAME=FRACTION with NAME one of "
                             f"{', '.join(SPLIT_NAMES)}, each once")
        try:
            out[name] = float(value)
        except ValueError:
            raise PrimeError(f"--split {text!r}: {value!r} is not a number") from None
        if not 0 < out[name] <= 1:
            raise PrimeError(f"--split {text!r}: the fraction of {name} must lie in (0, 1]")
    if "train" not in out:
        raise PrimeError(f"--split {text!r} must include train")
    if abs(sum(out.values()) - 1) > 1e-9:
        raise PrimeError(f"--split {text!r}: the fractions sum to {sum(out.values()):g}, not 1")
    return {s: out[s] for s in SPLIT_NAMES if s in out}


def doc_u(text: str) -> float:
    """u ∈ [0, 1): the first 8 bytes of sha256(UTF-8 text) as an integer / 2⁶⁴."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2.0**64


def split_of(text: str, cuts: list[tuple[str, float]]) -> str:
    """The split of a document under the sha256 rule (module docstring); ``cuts`` = cumulative fractions."""
    u = doc_u(text)
    return next((name for name, c in cuts if u < c), cuts[-1][0])


def cumulative(fractions: dict[str, float]) -> list[tuple[str, float]]:
    total, cuts = 0.0, []
    for name, f in fractions.items():
        total += f
        cuts.append((name, total))
    return cuts


# ------------------------------------------------------------------------------------------------ sources
def resolve_sources(sources: list[str]) -> list[Source]:
    """Every input file, in the order given (a folder's or glob's files sorted); missing sources are errors."""
    from prime_core.api import MAX_SOURCE_TEXT_BYTES, check_regular_file

    if not sources:
        raise PrimeError("name at least one SOURCE (a file, a folder, a glob or an fsspec URL)")
    out: list[Source] = []
    for src in sources:
        try:
            fs, path = fsspec.core.url_to_fs(src)
            if any(c in src for c in "*?["):
                files = sorted(p for p in fs.glob(path) if fs.isfile(p))
                if not files:
                    raise PrimeError(f"the pattern {src} matches no file")
            elif fs.isdir(path):
                files = sorted(p for p in fs.find(path) if not os.path.basename(p).startswith("."))
                if not files:
                    raise PrimeError(f"folder {src} contains no files")
            elif fs.exists(path):
                files = [path]
            else:
                raise PrimeError(f"source not found: {src} (give a file, a folder, a glob or an fsspec URL)")
        except PrimeError:
            raise
        except (OSError, ValueError, ImportError) as exc:
            raise PrimeError(f"cannot read source {src}: {first_line(exc)}") from None
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        for p in files:
            url = p if protocol in ("file", "local") else fs.unstrip_protocol(p)
            kind = _kind(p)
            # before any work: a regular file (not /dev/zero, a FIFO, a socket); a text file within its limit
            check_regular_file(url, f"source {url}", MAX_SOURCE_TEXT_BYTES if kind == "text" else None)
            out.append(Source(url, kind))
    return out


def _kind(path: str) -> str:
    name = path.lower()
    for suffix, builder in TABULAR.items():
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return builder
    return "text"


def fingerprint(src: Source) -> dict[str, Any]:
    """What identifies a source file without reading it: URL, size and modification time / ETag if known."""
    fs, path = fsspec.core.url_to_fs(src.url)
    info = fs.info(path)
    stamp = info.get("mtime") or info.get("modified") or info.get("LastModified") or info.get("ETag")
    return {"url": src.url, "kind": src.kind, "size": info.get("size"), "modified": str(stamp) if stamp else None}


def _text_documents(src: Source, unit: str) -> Iterator[str]:
    """The documents of a plain-text file, read whole: at most `MAX_SOURCE_TEXT_BYTES` after decompression."""
    from prime_core.api import MAX_SOURCE_TEXT_BYTES, read_bounded

    text = _decode(read_bounded(src.url, MAX_SOURCE_TEXT_BYTES, f"source {src.url}", compression="infer"), src.url)
    if unit == "file":
        yield text
        return
    parts = text.split("\n\n") if unit == "paragraph" else text.splitlines()
    yield from (p for p in parts if p.strip())


def _load_table(src: Source, field: str, cache_dir: str):
    try:
        import datasets
    except ImportError:
        raise PrimeError(DATA_EXTRA) from None
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(src.kind, data_files=[src.url], split="train", cache_dir=cache_dir)
    except Exception as exc:  # noqa: BLE001 — datasets/pyarrow raise many types for a malformed file
        raise PrimeError(f"cannot read {src.url} as {src.kind}: {first_line(exc)}") from None
    if field not in ds.column_names:
        raise PrimeError(f"{src.url} has no field {field!r} (its fields: {', '.join(ds.column_names) or 'none'}); "
                         "name the text field with --text-field")
    dtype = getattr(ds.features[field], "dtype", None)
    if dtype not in ("string", "large_string"):
        raise PrimeError(f"field {field!r} of {src.url} holds {dtype or type(ds.features[field]).__name__}, not text")
    return ds.select_columns([field])


# ------------------------------------------------------------------------------------------------ tokenizing
_WORKER_TOKENIZER: dict[str, Any] = {}


def _tokenizer_in_worker(state: str):
    """The tokenizer rebuilt once per process from its JSON state (workers receive text, not objects)."""
    if state not in _WORKER_TOKENIZER:
        _WORKER_TOKENIZER.clear()
        _WORKER_TOKENIZER[state] = tokenizer_from_json(json.loads(state))
    return _WORKER_TOKENIZER[state]


def encode_document(text: str, state: str, cuts: list[tuple[str, float]]) -> tuple[str, list[int], int]:
    """(split, [BOS] ids [EOS], UTF-8 bytes) of one document."""
    tok = _tokenizer_in_worker(state)
    ids = tok.encode(text)
    bos = [] if tok.bos_id is None else [tok.bos_id]
    eos = [] if tok.eos_id is None else [tok.eos_id]
    return split_of(text, cuts), [*bos, *ids, *eos], len(text.encode("utf-8"))


def _encode_text_job(job):
    return encode_document(*job)


def _encode_batch(batch: dict, field: str, state: str, cuts):
    rows = [encode_document(t, state, cuts) if t is not None and t.strip() else ("", [], 0) for t in batch[field]]
    return {"split": [r[0] for r in rows], "ids": [r[1] for r in rows], "nbytes": [r[2] for r in rows]}


class _Writer:
    """Appends documents to the per-split token files under the work folder; counts tokens, documents, bytes."""

    def __init__(self, work: str, splits: Iterable[str], dtype: np.dtype):
        self.work, self.dtype = work, dtype
        self.files = {s: open(tokens_path(work, s), "wb") for s in splits}
        self.offsets = {s: [0] for s in self.files}
        self.nbytes = {s: 0 for s in self.files}

    def add(self, split: str, ids: list[int], nbytes: int) -> None:
        if not ids:
            return
        np.asarray(ids, dtype=self.dtype).tofile(self.files[split])
        self.offsets[split].append(self.offsets[split][-1] + len(ids))
        self.nbytes[split] += nbytes

    def close(self) -> dict[str, dict[str, int]]:
        for s, fh in self.files.items():
            fh.close()
            np.save(offsets_path(self.work, s), np.asarray(self.offsets[s], dtype=np.int64), allow_pickle=False)
        return {s: {"tokens": self.offsets[s][-1], "documents": len(self.offsets[s]) - 1, "bytes": self.nbytes[s]}
                for s in self.files}


# ------------------------------------------------------------------------------------------------ the command
@attrs.frozen
class PrepareRequest:
    sources: list[str]
    out: str
    tokenizer: str = "bytes"
    tokenizer_options: dict = attrs.Factory(dict)
    text_field: str = "text"
    split: str | None = None  # None: DEFAULT_SPLIT, with a held-out document guaranteed (see `prepare`)
    text_unit: str = "file"
    workers: int = 1
    force: bool = False
    progress: bool = True


def guaranteed_cuts(cuts: list[tuple[str, float]], us: list[float]) -> list[tuple[str, float]]:
    """The default split's cuts, lowered just enough that every held-out split gets a document.

    ``us`` are the corpus's distinct u values. Going from the last split down, a held-out split whose interval
    [c_{k−1}, c_k) holds no u has its lower cut moved down to the largest u below c_k (that document moves to it
    from the split before). A held-out split that cannot get a document while train keeps at least one is dropped:
    2 distinct documents give train + valid, 1 gives train only. The rule stays "the first split whose cut
    exceeds u", with these cuts."""
    us = sorted(set(us))
    keep = max(1, min(len(cuts), len(us)))  # train + as many held-out splits as documents allow
    names = [name for name, _ in cuts[:keep]]
    bounds = [c for _, c in cuts[:keep - 1]] + [1.0]
    for k in range(keep - 1, 0, -1):
        lower, upper = bounds[k - 1], bounds[k]
        if not any(lower <= u < upper for u in us):
            bounds[k - 1] = max(u for u in us if u < upper)
        for j in range(k - 1):  # keep the cuts non-decreasing
            bounds[j] = min(bounds[j], bounds[k - 1])
    return list(zip(names, bounds))


def prepare(req: PrepareRequest) -> dict[str, Any]:
    """Run ``prime data prepare``; returns the sidecar written to ``req.out``.

    ``req.split`` None is the default split (`DEFAULT_SPLIT` with `guaranteed_cuts` when the hash rule leaves a
    held-out split empty); an explicit split is taken as given, and a split it leaves empty is refused."""
    fractions = parse_split(req.split or DEFAULT_SPLIT)
    cuts = cumulative(fractions)
    if req.text_unit not in TEXT_UNITS:
        raise PrimeError(f"--text-unit must be one of {', '.join(TEXT_UNITS)}, got {req.text_unit!r}")
    _check_out(req.out, req.force)
    try:
        tokenizer = tokenizer_class(req.tokenizer)(**req.tokenizer_options)
    except (TypeError, ValueError) as exc:
        raise PrimeError(f"--tokenizer-option for {req.tokenizer}: {first_line(exc)}") from None
    sources = resolve_sources(req.sources)
    work = os.path.join(req.out, WORK)  # created only once the request is valid
    created = not os.path.exists(req.out)
    shutil.rmtree(work, ignore_errors=True)  # a previous, interrupted run: restart cleanly
    os.makedirs(work)
    try:
        tables = {s.url: _load_table(s, req.text_field, os.path.join(work, "hf")) for s in sources if s.kind != "text"}
        requested = cuts
        trained, counts = _build(work, sources, tables, req, tokenizer, cuts)
        if req.split is None and any(c["documents"] == 0 for c in counts.values()):
            # a small corpus under the default split: move the cuts, then tokenise again (cheap at that size)
            us = [doc_u(t) for t in _documents(sources, tables, req)]
            if us:  # an empty corpus is refused below
                cuts = guaranteed_cuts(cuts, us)
                trained, counts = _build(work, sources, tables, req, tokenizer, cuts)
        _check_counts(counts, fractions)
        splits = [name for name, _ in cuts]
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "tokenizer": trained.to_json(),
                "num_classes": trained.vocab_size, "dtype": token_dtype(trained.vocab_size).name,
                "bos_id": trained.bos_id, "eos_id": trained.eos_id, "splits": counts,
                "split_rule": {"method": "sha256(utf-8 text)[:8] / 2^64 < cumulative fraction",
                               "fractions": fractions if cuts == requested else _fractions(cuts),
                               "cuts": dict(cuts), "cuts_moved": cuts != requested, "requested": fractions,
                               "default": req.split is None, "text_unit": req.text_unit},
                "text_field": req.text_field, "sources": [fingerprint(s) for s in sources]}
        _publish(work, req.out, splits, meta)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if created and not os.listdir(req.out):  # a failed run leaves no trace
            os.rmdir(req.out)
    return meta


def _build(work: str, sources, tables, req: PrepareRequest, tokenizer, cuts):
    """(the tokenizer, trained on the train split if it learns; per-split counts) with the token files under
    ``work`` for the splits named in ``cuts``."""
    if tokenizer.needs_training:
        train = (t for t in _documents(sources, tables, req) if split_of(t, cuts) == "train")
        tokenizer = tokenizer.trained(train)
    state = json.dumps(tokenizer.to_json())
    writer = _Writer(work, [name for name, _ in cuts], token_dtype(tokenizer.vocab_size))
    return tokenizer, _tokenize(sources, tables, req, state, cuts, writer)


def _fractions(cuts: list[tuple[str, float]]) -> dict[str, float]:
    """The fraction of [0, 1) each split's cut interval covers (the requested ones unless the cuts moved)."""
    out, lower = {}, 0.0
    for name, c in cuts:
        out[name], lower = c - lower, c
    return out


def _check_out(out: str, force: bool) -> None:
    if os.path.isfile(out):
        raise PrimeError(f"--out {out} is a file; give a folder (created if missing)")
    if "://" in out and not out.startswith("file://"):
        raise PrimeError(f"--out must be a local folder (the token files are memory-mapped), got {out}")
    if os.path.isfile(os.path.join(out, SIDECAR)) and not force:
        raise PrimeError(f"{out} already holds a prepared corpus ({SIDECAR}); pass --force to replace it")


def _documents(sources: list[Source], tables: dict, req: PrepareRequest) -> Iterator[str]:
    for src in sources:
        if src.kind == "text":
            yield from _text_documents(src, req.text_unit)
        else:
            for batch in tables[src.url].iter(batch_size=1000):
                yield from (t for t in batch[req.text_field] if t is not None and t.strip())


def _tokenize(sources, tables, req: PrepareRequest, state: str, cuts, writer: _Writer):
    bar = tqdm(desc="prepare", unit="doc", disable=not req.progress, dynamic_ncols=True)
    pool = multiprocessing.Pool(req.workers) if req.workers > 1 else None
    try:
        for src in sources:
            if src.kind == "text":
                jobs = ((t, state, cuts) for t in _text_documents(src, req.text_unit))
                rows = pool.imap(_encode_text_job, jobs, chunksize=8) if pool else map(_encode_text_job, jobs)
                for split, ids, nbytes in rows:
                    writer.add(split, ids, nbytes)
                    bar.update()
            else:
                mapped = tables[src.url].map(
                    _encode_batch, batched=True, num_proc=req.workers if req.workers > 1 else None,
                    remove_columns=[req.text_field], fn_kwargs={"field": req.text_field, "state": state, "cuts": cuts},
                    desc=None)
                for batch in mapped.iter(batch_size=1000):
                    for split, ids, nbytes in zip(batch["split"], batch["ids"], batch["nbytes"]):
                        if split:
                            writer.add(split, ids, nbytes)
                            bar.update()
    finally:
        if pool is not None:
            pool.terminate()
        bar.close()
        counts = writer.close()
    return counts


def _check_counts(counts: dict, fractions: dict) -> None:
    total = sum(c["documents"] for c in counts.values())
    if total == 0:
        raise PrimeError("the corpus is empty: the sources hold no non-blank document")
    for s, c in counts.items():
        if c["documents"] == 0:
            raise PrimeError(f"the {s} split got no document ({total} documents, fraction {fractions[s]:g}); give "
                             "more documents, a larger fraction, or a finer --text-unit (paragraph, line)")


def _publish(work: str, out: str, splits: Iterable[str], meta: dict) -> None:
    """Move the finished files into ``out``; the sidecar goes first (removed) and last (written), so at no moment
    does ``out`` hold a sidecar that describes other token files than those beside it."""
    old = os.path.join(out, SIDECAR)
    if os.path.exists(old):
        os.remove(old)
    for s in SPLIT_NAMES:  # a replaced corpus's splits that the new one lacks
        for path in (tokens_path(out, s), offsets_path(out, s)):
            if s not in splits and os.path.exists(path):
                os.remove(path)
    for s in splits:
        os.replace(tokens_path(work, s), tokens_path(out, s))
        os.replace(offsets_path(work, s), offsets_path(out, s))
    tmp = os.path.join(work, SIDECAR)
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
    os.replace(tmp, old)
