"""A run folder (``--out`` of ``prime train`` / ``prime run``): what it may be, who may write it, how it starts.

- `local_out_dir` accepts exactly what the trainers can honour: a local folder (new or existing), or a
  ``file://`` URL, normalised to its path. Other fsspec URLs are refused: metrics, plots and reports are written
  with local file I/O, so a ``memory://`` or ``s3://`` run would lose or split its artifacts.
- `claim` holds an exclusive ``flock`` on ``<out>/.prime.lock`` for a writer's lifetime, so one process writes a
  run folder at a time; a second gets a one-line `PrimeError` and changes nothing. The kernel drops the lock when
  its holder dies, so a lock file left by a killed run blocks nobody. Claims are re-entrant within a process
  (``prime run`` claims the folder and its trainer claims it again).
- The manifest ``<out>/.prime-manifest.json`` lists what prime runs created in the folder (files at the names
  of `RUN_ARTIFACTS`, the folders of `RUN_FOLDERS` and TensorBoard's event files in them). `check_outputs`
  refuses, before a run writes anything, files at those names that no run recorded (the user's own
  ``report.md``, or a folder from a prime version older than manifests), and records the names the run will
  write *before* it writes them, so a run killed with ``kill -9`` still owns what it left. When the outermost
  claim ends, the manifest is settled: entries that do not exist are dropped, event files the run wrote are
  added; a run that failed before saving a checkpoint removes what it created (and the folders it created).
- `start_over` removes what the manifest lists (``--force``), to be called only once the new run's config and
  data are validated — never a file no prime run recorded; `trim_metrics` drops the log rows a resumed run
  will replay.
- `write_text_atomic`: whole files or nothing (temporary name, then a rename).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from contextlib import contextmanager
from urllib.parse import urlsplit

from ..errors import PrimeError, first_line
from .keep import BEST_NAME

LOCK_NAME = ".prime.lock"
CHECKPOINT_NAME = "checkpoint.safetensors"
# the names prime itself writes into a run folder; --force removes those of them the folder's manifest lists as
# written by a prime run, and nothing else
RUN_ARTIFACTS = (CHECKPOINT_NAME, BEST_NAME, "metrics.jsonl", "loss.png", "report.json", "report.md",
                 "samples.png")
# folders prime writes (TensorBoard event files, train.tensorboard); --force removes the event files the manifest
# lists in them, and the folder itself when prime made it and it is then empty
RUN_FOLDERS = ("tensorboard",)
#: what a training run writes (the trainers check these); `REPORT_ARTIFACTS`: what ``prime run`` adds
TRAIN_ARTIFACTS = (CHECKPOINT_NAME, BEST_NAME, "metrics.jsonl", "loss.png")
REPORT_ARTIFACTS = ("report.json", "report.md", "samples.png")
#: the list of what prime runs created in a run folder (JSON: {"format": 1, "files": [...], "folders": [...]})
MANIFEST_NAME = ".prime-manifest.json"
_EVENTS_PREFIX = "events.out.tfevents."  # the names TensorBoard's writer gives its files


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
        self.before: set[str] | None = None  # the run entries that existed when the lock was taken


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
    for attempt in range(100):
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:  # read-only file system, no permission, a file on the path, …
            if isinstance(exc, FileNotFoundError) and attempt < 99 and os.path.isdir(os.path.dirname(
                    os.path.abspath(folder))):
                continue  # the folder vanished between makedirs and open (a failed run cleaned up): again
            raise PrimeError(_unwritable(folder, exc)) from None
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
    raise PrimeError(f"cannot lock run folder {folder}: its lock file keeps being replaced")


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

    The process that takes the lock settles the folder's manifest when the outermost claim ends (`_settle`):
    a run that failed (any exception, Ctrl-C included) before any checkpoint existed removes what it created.

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
            held.before = _run_entries(folder)
    except BaseException:
        if held.count == 0:
            del _HELD[key]
            _remove_created(held)
        raise
    held.count += 1
    failed = False
    try:
        yield folder
    except BaseException:
        failed = True
        raise
    finally:
        held.count -= 1
        if held.count == 0:
            del _HELD[key]
            if held.fd is not None:
                _settle(held, failed)
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


def _unwritable(folder: str, exc: OSError) -> str:
    reason = exc.strerror or first_line(exc)
    return f"--out {folder} cannot be written ({reason}); choose a folder you can write"


def check_writable(folder: str) -> None:
    """Refuse, before any work, an output folder that cannot be created or written (one line, not an errno after
    the work). Creates nothing that stays: a probe file in the folder (or its nearest existing ancestor) is
    removed at once."""
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if not os.path.isdir(path):
        raise PrimeError(f"--out {folder} cannot be created: {path} is a file, not a folder")
    probe = os.path.join(path, f".prime-probe-{os.getpid()}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.remove(probe)
    except OSError as exc:
        raise PrimeError(_unwritable(folder, exc)) from None


# ------------------------------------------------------------------------------------------------ manifest
def read_manifest(folder: str) -> tuple[set[str], set[str]]:
    """(files, folders) the manifest of ``folder`` lists as created by prime runs; empty without one. Entries
    are relative names of `RUN_ARTIFACTS`, `RUN_FOLDERS` and ``<folder>/<event file>``; anything else in a
    hand-edited manifest is ignored, so a manifest can never make prime delete another file."""
    try:
        with open(os.path.join(folder, MANIFEST_NAME), encoding="utf-8") as fh:
            data = json.loads(fh.read(1 << 20))
    except (FileNotFoundError, NotADirectoryError):
        return set(), set()
    except (OSError, ValueError) as exc:
        raise PrimeError(f"{os.path.join(folder, MANIFEST_NAME)} is not a prime manifest ({first_line(exc)}); "
                         f"remove it or choose another --out") from None
    if not isinstance(data, dict):
        data = {}
    files = {f for f in data.get("files", []) if isinstance(f, str) and _is_run_file(f)}
    folders = {f for f in data.get("folders", []) if f in RUN_FOLDERS}
    return files, folders


def _is_run_file(name: str) -> bool:
    """A name prime may own: a run artifact, or an event file directly inside a run folder."""
    if name in RUN_ARTIFACTS:
        return True
    sub, _, base = name.partition("/")
    return sub in RUN_FOLDERS and base.startswith(_EVENTS_PREFIX) and "/" not in base and base not in (".", "..")


def _write_manifest(folder: str, files: set[str], folders: set[str]) -> None:
    path = os.path.join(folder, MANIFEST_NAME)
    if not files and not folders:
        if os.path.exists(path):
            os.remove(path)
        return
    write_text_atomic(path, json.dumps({"format": 1, "files": sorted(files), "folders": sorted(folders)},
                                       indent=1) + "\n")


def _run_entries(folder: str) -> set[str]:
    """The run entries that exist in ``folder`` now: artifact names, run folders, and the event files in them."""
    out = {n for n in RUN_ARTIFACTS if os.path.lexists(os.path.join(folder, n))}
    for sub in RUN_FOLDERS:
        path = os.path.join(folder, sub)
        if os.path.isdir(path) and not os.path.islink(path):
            out.add(sub)
            out.update(f"{sub}/{n}" for n in os.listdir(path) if n.startswith(_EVENTS_PREFIX))
    return out


def check_outputs(folder: str, names=TRAIN_ARTIFACTS, *, resume: bool = False) -> None:
    """Before a run writes ``names`` into ``folder`` (under its lock): refuse any of them that exists but that no
    prime run recorded as its own — prime would overwrite or, with ``--force``, delete the user's file — then
    record all of them (and `RUN_FOLDERS` that do not exist yet) in the manifest, before they are written.

    ``resume``: the run continues the folder's checkpoint (the trainer checks that it is a prime checkpoint of
    the same config), so the training artifacts already there are adopted — a folder from a prime version older
    than manifests can still be resumed."""
    files, folders = read_manifest(folder)
    adopt = set(TRAIN_ARTIFACTS) if resume else set()
    foreign = [n for n in names if n not in files and n not in adopt and os.path.lexists(os.path.join(folder, n))]
    if foreign:
        raise PrimeError(f"{folder} holds {', '.join(foreign)}, which no prime run recorded as its own "
                         f"({MANIFEST_NAME}); prime would overwrite them: move them away or choose another --out")
    files |= set(names)
    folders |= {sub for sub in RUN_FOLDERS if not os.path.lexists(os.path.join(folder, sub))}
    _write_manifest(folder, files, folders)


def _settle(claim_: _Claim, failed: bool) -> None:
    """End of a locked claim: record the event files the run wrote into prime's folders, drop entries that do not
    exist; after a failure with no checkpoint to resume, first remove what this claim created."""
    folder = claim_.folder
    try:
        files, folders = read_manifest(folder)
    except PrimeError:
        return  # a manifest prime cannot read is left as it is
    now = _run_entries(folder)
    new = now - (claim_.before or set())
    # written while this process held the lock, so prime's: TensorBoard's event files (named by its writer, known
    # only now) and artifacts of a run that did not call check_outputs (a third-party trainer, torchrun's report)
    files |= {e for e in new if e not in RUN_FOLDERS}
    if failed and not os.path.exists(os.path.join(folder, CHECKPOINT_NAME)):
        _remove_entries(folder, sorted(e for e in new if e in files), {e for e in new if e in folders})
        now = _run_entries(folder)
    _write_manifest(folder, files & now, folders & now)


def _removable(folder: str, name: str) -> str | None:
    """The path of run entry ``name`` if it is a file (or link) prime may remove: never through a linked folder
    (a ``tensorboard`` link pointing elsewhere would make a listed event file another folder's file)."""
    path = os.path.join(folder, name)
    parent = os.path.dirname(path)
    if os.path.islink(parent) or not (os.path.isfile(path) or os.path.islink(path)):
        return None
    return path


def _remove_entries(folder: str, files, folders) -> list[str]:
    """Remove ``files`` (relative names, in the order given), then ``folders`` while empty; returns what was
    removed."""
    removed = []
    for name in files:
        if (path := _removable(folder, name)) is not None:
            os.remove(path)
            removed.append(name)
    for sub in sorted(folders):
        try:
            os.rmdir(os.path.join(folder, sub))
            removed.append(sub)
        except OSError:
            pass  # not empty: the user put something there, keep it
    return removed


# ------------------------------------------------------------------------------------------------ contents
def start_over(folder: str) -> list[str]:
    """Remove the previous run's artifacts (``--force``; call only after the new run is validated, under the
    lock): exactly what the folder's manifest lists (the checkpoint first, so a half-finished clean-up can never
    be resumed with another run's log). A file no prime run recorded stays, whatever its name; so does a run
    folder holding the user's files. The entries stay in the manifest: the new run writes them again. Returns
    the names removed."""
    files, folders = read_manifest(folder)
    removed = _remove_entries(folder, sorted(files, key=lambda n: (n != CHECKPOINT_NAME, n)), folders)
    held = _HELD.get(os.path.realpath(folder))
    if held is not None and held.before is not None:
        held.before -= set(removed)  # what the new run writes at these names is its own (removed on failure)
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
