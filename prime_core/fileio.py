"""Bounded reads of the files prime reads whole, and up-front checks of the files it writes.

Reads (`read_bounded`, `read_text_bounded`, `check_regular_file`): configs, ``--prompts`` files, ``--data``
files, ``prime data prepare`` sources and ``prime import`` sources are *regular files* (a local path,
``file://`` or an fsspec URL). Before anything is opened, ``stat`` (``fs.info`` for a URL) refuses a missing
path, a folder, a character or block device (``/dev/zero``, ``/dev/stdin`` on a terminal or ``< /dev/zero``),
a FIFO or pipe (``/dev/stdin`` of a pipe, ``<(cmd)``), a socket, and a size over the kind's limit. Then at most
limit + 1 bytes are read, so a file that grows while being read, or a URL whose size is unknown, can never
make prime read more than the limit. No stream is read: every limit below is documented in
docs/reliability.md, far above real use.

Writes (`check_output_file`): a file a command writes (``prime import --out``, ``prime export -o``) must be a
local path, not an existing folder, not an existing file unless ``--force``, in a folder that exists and is
writable. All of it is checked before the work starts, so a refused output costs nothing and leaves nothing.

Every refusal is a one-line `PrimeError` that starts with ``what`` (e.g. "--config x.toml"): the CLI prints
it and exits 2.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Iterator

from .errors import PrimeError, first_line

MiB, GiB = 2**20, 2**30
#: A TOML config (the shipped ones are ~2 kB).
MAX_CONFIG_BYTES = 1 * MiB
#: ``--prompts FILE``: one prompt per line.
MAX_PROMPTS_BYTES = 16 * MiB
#: ``prime eval --data FILE``: one document, tokenised whole.
MAX_EVAL_TEXT_BYTES = 1 * GiB
#: One plain-text source file of ``prime data prepare`` or of the text data set (read whole, after
#: decompression for ``.gz`` / ``.bz2`` / …); split larger corpora into several files.
MAX_SOURCE_TEXT_BYTES = 2 * GiB
#: A small JSON side file, e.g. the ``config.json`` of an imported Hugging-Face folder.
MAX_JSON_BYTES = 16 * MiB

_KINDS = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO (pipe)",
          stat.S_IFSOCK: "a socket"}


def size_text(n: int) -> str:
    """``n`` bytes in the unit the limits are stated in (bytes, MiB or GiB)."""
    return f"{n / GiB:g} GiB" if n >= GiB else f"{n / MiB:g} MiB" if n >= MiB else f"{n} bytes"


def is_url(text: str) -> bool:
    """An fsspec URL (``proto://…`` or a chained ``a::b``), as opposed to a local path; ``file://`` counts
    as local (`local_path`)."""
    return ("://" in text or "::" in text) and not text.startswith("file://")


def local_path(text: str) -> str:
    """The path of a local file name or ``file://`` URL."""
    return text[len("file://"):] if text.startswith("file://") else text


# ------------------------------------------------------------------------------------------------ reads
def check_regular_file(url: str, what: str, limit: int | None = None) -> int | None:
    """Refuse, from ``stat`` / ``fs.info`` alone (nothing is opened), anything but a regular file, and a size
    over ``limit`` bytes. Returns the size (None where an fsspec filesystem reports none)."""
    if is_url(url):
        size = _url_size(url, what)
    else:
        size = _local_size(local_path(url), what)
    if limit is not None and size is not None and size > limit:
        raise PrimeError(f"{what}: is {size_text(size)}, more than the {size_text(limit)} allowed")
    return size


def _local_size(path: str, what: str) -> int:
    try:
        st = os.stat(path)  # follows links: /dev/stdin → the pipe or device behind it
    except FileNotFoundError:
        raise PrimeError(f"{what}: not found") from None
    except OSError as exc:
        raise PrimeError(f"{what}: cannot read it ({first_line(exc)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise PrimeError(f"{what}: is a folder; give a regular file")
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise PrimeError(f"{what}: is {kind}; only regular files are read (no devices, pipes or streams)")
    return st.st_size


def _url_size(url: str, what: str) -> int | None:
    """``fs.info`` of a URL: its size, or None when the filesystem reports none. Not found, a folder and a
    connection that could not be made are told apart."""
    try:
        fs, path = url_to_fs(url, what)
        info = fs.info(path)
    except PrimeError:
        raise
    except FileNotFoundError as exc:
        if refused_connection(exc):
            raise PrimeError(f"{what}: connection refused or host unreachable ({cause_line(exc)})") from None
        raise PrimeError(f"{what}: not found") from None
    except (OSError, ValueError) as exc:
        if refused_connection(exc):
            raise PrimeError(f"{what}: connection refused or host unreachable ({cause_line(exc)})") from None
        raise PrimeError(f"{what}: cannot read it ({cause_line(exc)})") from None
    kind = info.get("type")
    if kind == "directory":
        raise PrimeError(f"{what}: is a folder; give a file")
    if kind not in (None, "file"):
        raise PrimeError(f"{what}: is {kind}, not a regular file; only regular files are read")
    size = info.get("size")
    return int(size) if isinstance(size, int) and not isinstance(size, bool) else None


def url_to_fs(url: str, what: str, error: type[PrimeError] = PrimeError):
    """fsspec's filesystem and path of ``url``; a protocol whose package is missing names the package, and an
    unknown protocol is one line (both as ``error``: checkpoints raise `CheckpointError`)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except ImportError:
        from fsspec.registry import known_implementations

        protocol = url.split("://", 1)[0]
        cls = known_implementations.get(protocol, {}).get("class", "")
        package = cls.split(".", 1)[0] or f"the fsspec implementation of {protocol}://"
        raise error(f"{what}: reading {protocol}:// URLs needs the {package} package "
                    f"(pip install {package}), which is missing") from None
    except ValueError as exc:  # unknown protocol
        raise error(f"{what}: cannot read it ({first_line(exc)})") from None


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during (fsspec wraps a client's error)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def refused_connection(exc: BaseException) -> bool:
    """Whether a failure was a connection that could not be made (refused, unreachable, DNS), not a 404."""
    return any(isinstance(e, (ConnectionError, socket.gaierror)) or type(e).__name__.startswith("ClientConnector")
               for e in _causes(exc))


def cause_line(exc: BaseException) -> str:
    """The first line of the innermost cause: the client's own words (e.g. "Connection refused")."""
    return first_line(list(_causes(exc))[-1])


def read_bounded(url: str, limit: int, what: str, compression: str | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (`check_regular_file` first, then at most
    limit + 1 bytes read). ``compression`` ("infer" or an fsspec codec) bounds the *decompressed* bytes too,
    so a small ``.gz`` that inflates without end is refused after limit + 1 bytes."""
    check_regular_file(url, what, limit)
    try:
        if compression is None and not is_url(url):
            with open(local_path(url), "rb") as fh:
                raw = fh.read(limit + 1)
        else:
            import fsspec

            with fsspec.open(url, "rb", compression=compression) as fh:
                raw = fh.read(limit + 1)
    except PrimeError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # gzip's BadGzipFile is an OSError, a bad codec a ValueError
        verb = "connection refused or host unreachable" if refused_connection(exc) else "cannot read it"
        raise PrimeError(f"{what}: {verb} ({cause_line(exc)})") from None
    if len(raw) > limit:
        raise PrimeError(f"{what}: holds more than the {size_text(limit)} allowed"
                         f"{' (decompressed)' if compression else ''}")
    return raw


def read_text_bounded(url: str, limit: int, what: str) -> str:
    """`read_bounded` decoded as UTF-8 (an undecodable file is one line naming the byte)."""
    raw = read_bounded(url, limit, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PrimeError(f"{what}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None


# ------------------------------------------------------------------------------------------------ writes
def check_output_file(out: str, what: str, force: bool) -> str:
    """Check, before any work, that the file ``out`` can be written: a local path (a URL such as
    ``memory://…`` or ``s3://…`` is refused: the file would vanish with the process or the upload is not
    supported), not a folder, not an existing file unless ``force``, in a writable folder (missing folders
    above it are created by the writer, so the nearest existing one must be writable).
    Returns the local path."""
    if is_url(out):
        protocol = out.split("://", 1)[0] if "://" in out else out.split("::", 1)[0]
        raise PrimeError(f"{what} {out}: writes a local file only, not a {protocol}:// URL; give a path "
                         "(copy the file elsewhere afterwards)")
    path = local_path(out)
    if not path or path.endswith(os.sep):
        raise PrimeError(f"{what} {out!r}: give a file name, not a folder")
    if os.path.isdir(path):
        raise PrimeError(f"{what} {out}: is a folder; give the path of a file to write (e.g. one inside it)")
    if os.path.lexists(path):
        if not os.path.isfile(path):
            raise PrimeError(f"{what} {out}: exists and is not a regular file; give another name")
        if not force:
            raise PrimeError(f"{what} {out}: exists; pass --force to overwrite it")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):  # missing folders are created by the writer: check where they would go
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise PrimeError(f"{what} {out}: {parent} is a file, not a folder; give another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PrimeError(f"{what} {out}: the folder {parent} is not writable")
    return path


__all__ = ["MAX_CONFIG_BYTES", "MAX_EVAL_TEXT_BYTES", "MAX_JSON_BYTES", "MAX_PROMPTS_BYTES", "MAX_SOURCE_TEXT_BYTES",
           "check_output_file", "check_regular_file", "is_url", "read_bounded", "read_text_bounded",
           "refused_connection", "size_text"]
