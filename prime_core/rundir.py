"""A run folder (``--out`` of ``prime train`` / ``prime run``): what it may be, who may write it, how it starts.

- `local_out_dir` accepts exactly what the trainers can honour: a local folder (new or existing), or a
  ``file://`` URL, normalised to its path. Other fsspec URLs are refused: metrics, plots and reports are written
  with local file I/O, so a ``memory://`` or ``s3://`` run would lose or split its artifacts.
- `claim` holds an exclusive ``flock`` on ``<out>/.prime.lock`` for a writer's lifetime, so one process writes a
  run folder at a time; a second gets a one-line `PrimeError` and changes nothing. The kernel drops the lock when
  its holder dies, so a lock file left by a killed run blocks nobody. Claims are re-entrant within a process
  (``prime run`` claims the folder and its trainer claims it again).
- `start_over` removes a previous run's artifacts (``--force``), to be called only once the new run's config
  and data are validated; `trim_metrics` drops the log rows a resumed run will replay.
- `write_text_atomic`: whole files or nothing (temporary name, then a rename).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from contextlib import contextmanager
from urllib.parse import urlsplit

from .errors import PrimeError
from .keep import BEST_NAME

LOCK_NAME = ".prime.lock"
CHECKPOINT_NAME = "checkpoint.safetensors"
# what prime itself writes into a run folder; --force removes these and nothing else (the checkpoint first, so a
# half-finished clean-up can never be resumed with another run's log)
RUN_ARTIFACTS = (CHECKPOINT_NAME, BEST_NAME, "metrics.jsonl", "loss.png", "report.json", "report.md",
                 "samples.png")
# folders prime writes (TensorBoard event files, train.tensorboard); --force removes the event files in them
RUN_FOLDERS = ("tensorboard",)


def local_out_dir(out: str) -> str:
    """The local folder ``out`` names: a path, or a ``file://`` URL (→ its path). Refuses other URLs and files."""
    if not out:
        raise PrimeError("--out must name a folder, got an empty string")
    if "://" in out or "::" in out:
        parts = urlsplit(out)
        if parts.scheme != "file" or "::" in out:
            raise PrimeError(f"--out {out!r}: run folders must be local (a path or file:// URL); prime writes "
                             f"metrics, plots and reports with local file I/O — write locally, then copy the folder")
        if parts.netloc not in ("", "localhost"):
            raise PrimeError(f"--out {out!r}: a file:// URL must name a local path (file:///path), "
                             f"not host {parts.netloc!r}")
        if not parts.path:
            raise PrimeError(f"--out {out!r}: the file:// URL has no path")
        out = parts.path
    if os.path.exists(out) and not os.path.isdir(out):
        raise PrimeError(f"--out {out} is an existing file; it must be a folder (new or existing)")
    return out


# ------------------------------------------------------------------------------------------------ the lock
_HELD: dict[str, "_Claim"] = {}  # realpath of a run folder → this process's claim on it


class _Claim:
    """This process's hold on one run folder: the locked file descriptor and how many claims share it."""

    def __init__(self, folder: str, created: str | None):
        self.folder, self.created = folder, created  # created: the top-most folder this claim made, if any
        self.fd: int | None = None
        self.count = 0


def _first_missing(folder: str) -> str | None:
    """The top-most ancestor of ``folder`` (or itself) that does not exist yet; None if it exists."""
    missing, path = None, os.path.abspath(folder)
    while not os.path.exists(path):
        missing, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _holder(lock_path: str) -> str:
    try:
        with open(lock_path, encoding="utf-8") as fh:
            pid = fh.read().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"


def _lock(folder: str) -> int:
    """Create ``folder`` and take the exclusive lock; returns the locked descriptor or raises `PrimeError`."""
    lock_path = os.path.join(folder, LOCK_NAME)
    while True:
        os.makedirs(folder, exist_ok=True)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # the folder vanished between makedirs and open (a failed run cleaned up)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise PrimeError(f"cannot lock run folder {folder}: {exc.strerror}") from None
            raise PrimeError(f"{folder} is being written by another prime process ({_holder(lock_path)}); wait for "
                             f"it to finish or choose another --out") from None
        # a releasing holder unlinks the file before closing it; if that happened between our open and flock we
        # hold a lock on a deleted inode, which guards nothing: keep the lock only if the path still names our file
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)


def _unlock(claim_: _Claim) -> None:
    """Drop the lock file (while still holding the lock), then close it."""
    try:
        os.unlink(os.path.join(claim_.folder, LOCK_NAME))
    except FileNotFoundError:
        pass
    os.close(claim_.fd)


@contextmanager
def claim(folder: str, *, lock: bool = True):
    """Hold ``folder`` as this process's run folder for the ``with`` block (re-entrant).

    ``lock=False`` takes no lock now but keeps any lock a nested claim takes until this block ends: ``prime run``
    under torchrun, where the trainer takes it on rank 0 once the process group can tell the other ranks.
    A folder created here and left empty (the run failed before writing) is removed on exit.
    """
    key = os.path.realpath(folder)
    held = _HELD.get(key)
    if held is None:
        held = _HELD[key] = _Claim(folder, _first_missing(folder))
    try:
        if lock and held.fd is None:
            held.fd = _lock(folder)
    except BaseException:
        if held.count == 0:
            del _HELD[key]
            _remove_created(held)
        raise
    held.count += 1
    try:
        yield folder
    finally:
        held.count -= 1
        if held.count == 0:
            del _HELD[key]
            if held.fd is not None:
                _unlock(held)
            _remove_created(held)


def _remove_created(claim_: _Claim) -> None:
    """Remove the folders this claim made, deepest first, while they are empty: a run that failed before writing
    leaves no empty --out behind, one that wrote anything keeps it, and a folder the user made always stays."""
    if claim_.created is None:
        return
    for path in _chain(claim_.folder, claim_.created):
        try:
            os.rmdir(path)  # fails (and stops) on the first folder that is not empty or not there
        except OSError:
            return


def _chain(folder: str, top: str) -> list[str]:
    """``folder`` and its ancestors up to and including ``top``, deepest first."""
    out, path = [], os.path.abspath(folder)
    while True:
        out.append(path)
        if path == os.path.abspath(top) or os.path.dirname(path) == path:
            return out
        path = os.path.dirname(path)


# ------------------------------------------------------------------------------------------------ contents
def start_over(folder: str) -> list[str]:
    """Remove the previous run's artifacts (``--force``; call only after the new run is validated, under the
    lock). Files prime did not write stay. Returns the names removed."""
    removed = []
    for name in RUN_ARTIFACTS:
        try:
            os.remove(os.path.join(folder, name))
            removed.append(name)
        except FileNotFoundError:
            pass
    for sub in RUN_FOLDERS:
        path = os.path.join(folder, sub)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            if name.startswith("events.out.tfevents."):  # only what TensorBoard's writer made
                os.remove(os.path.join(path, name))
                removed.append(f"{sub}/{name}")
        try:
            os.rmdir(path)
        except OSError:
            pass  # the user put something else there: keep it
    return removed


def trim_metrics(path: str, start_step: int) -> None:
    """Fresh runs start a new log; a resumed run drops rows logged after its checkpoint (they are replayed) and a
    last line cut short by a kill."""
    if not os.path.exists(path):
        return
    if start_step == 0:
        os.remove(path)
        return
    keep = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line half-written when the run was killed
            if isinstance(row, dict) and row.get("step", 0) <= start_step:
                keep.append(line if line.endswith("\n") else line + "\n")
    write_text_atomic(path, "".join(keep))


def write_text_atomic(path: str, text: str) -> str:
    """Write ``text`` to ``path`` whole or not at all: a temporary name beside it, fsync, then a rename."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
