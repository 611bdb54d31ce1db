"""Text sources → documents (name, text). Every problem with the input is a one-line `PrimeError`.

``austen`` is the embedded default: Jane Austen's six novels from Debian's ``r-cran-janeaustenr``, an R lazy-load
database (Rdata.rdx: gzip'd serialized index of (offset, length) per object; Rdata.rdb: each object a 4-byte
length + zlib'd serialized R character vector, one element per line), read in pure Python with PyPI `rdata`.
Any other source is a local file, a folder (every file under it, sorted) or an fsspec URL; files must be
non-empty UTF-8 text in regular files of at most `prime_core.api.MAX_SOURCE_TEXT_BYTES`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import warnings
import zlib

import attrs
import fsspec

from prime_core import PrimeError

AUSTEN_DIR = "/usr/lib/R/site-library/janeaustenr/data"
AUSTEN_INSTALL = ("install it with `apt-get install -y r-cran-janeaustenr` (as root; `bash scripts/install.sh` "
                  "does it), or train on your own text with --set data.options.source=PATH")


@attrs.frozen
class Document:
    name: str
    text: str


def read_austen(directory: str = AUSTEN_DIR) -> list[Document]:
    """The six novels, one document each, lines joined with newlines."""
    rdx, rdb = os.path.join(directory, "Rdata.rdx"), os.path.join(directory, "Rdata.rdb")
    if not (os.path.isfile(rdx) and os.path.isfile(rdb)):
        raise PrimeError(f"the Jane Austen corpus is missing ({rdb} not found): {AUSTEN_INSTALL}")
    try:
        import rdata
    except ImportError:
        raise PrimeError("reading the Austen corpus needs PyPI rdata: pip install rdata") from None

    def parse(raw: bytes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    try:
        with open(rdx, "rb") as fh:
            index = parse(gzip.decompress(fh.read()))
        with open(rdb, "rb") as fh:
            blob = fh.read()
        docs = []
        for name, (offset, length) in index["variables"].items():
            lines = parse(zlib.decompress(blob[int(offset) + 4:int(offset) + int(length)]))
            docs.append(Document(str(name), "\n".join(str(x) for x in lines)))
    except (OSError, ValueError, KeyError, zlib.error) as exc:
        raise PrimeError(f"cannot read the Austen corpus in {directory} ({type(exc).__name__}): {AUSTEN_INSTALL}") from None
    return sorted(docs, key=lambda d: d.name)


def _decode(data: bytes, where: str) -> str:
    if not data.strip():
        raise PrimeError(f"text file {where} is empty; every corpus file needs some UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PrimeError(f"text file {where} is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                         "convert it to UTF-8 (e.g. iconv -t UTF-8)") from None


def read_source(source: str) -> list[Document]:
    """A file, a folder (all files below it, sorted by path) or an fsspec URL → documents."""
    if source == "austen":
        return read_austen()
    try:
        fs, path = fsspec.core.url_to_fs(source)
        if fs.isdir(path):
            files = sorted(p for p in fs.find(path) if not os.path.basename(p).startswith("."))
            if not files:
                raise PrimeError(f"folder {source} contains no files")
        elif fs.exists(path):
            files = [path]
        else:
            raise PrimeError(f"text source not found: {source} (give a file, a folder, an fsspec URL or 'austen')")
        from prime_core.api import MAX_SOURCE_TEXT_BYTES, read_bounded

        docs = []
        local = (fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]) in ("file", "local")
        for f in files:  # each a regular file of at most MAX_SOURCE_TEXT_BYTES (no /dev/zero, FIFO, socket)
            url = f if local else fs.unstrip_protocol(f)
            docs.append(Document(f, _decode(read_bounded(url, MAX_SOURCE_TEXT_BYTES, f"text source {f}"), f)))
    except PrimeError:
        raise
    except (OSError, ValueError, ImportError) as exc:
        raise PrimeError(f"cannot read text source {source}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return docs


def read_sources(sources: str | list[str]) -> list[Document]:
    sources = [sources] if isinstance(sources, str) else list(sources)
    if not sources:
        raise PrimeError("data.options.source is empty; name a file, a folder, an fsspec URL or 'austen'")
    return [d for s in sources for d in read_source(s)]


def fingerprint(docs: list[Document]) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(d.name.encode() + b"\0" + d.text.encode("utf-8") + b"\1")
    return h.hexdigest()


def split_text(text: str, fractions: tuple[float, float]) -> tuple[str, str, str]:
    """Cut one document into contiguous train / valid / test parts at line breaks: the last
    (valid + test) fraction of its characters is held out, valid first. Deterministic."""
    n = len(text)
    valid_f, test_f = fractions

    def cut(pos: float) -> int:
        i = int(pos)
        j = text.rfind("\n", 0, i)
        return j + 1 if j > 0 else i

    a, b = cut(n * (1 - valid_f - test_f)), cut(n * (1 - test_f))
    return text[:a], text[a:b], text[b:]
