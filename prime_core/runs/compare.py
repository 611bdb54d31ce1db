"""``prime run`` with ``[[compare]]`` variants: the main model and each variant are trained, sampled and evaluated
by the main job's own pipeline, each in a child process, ``jobs`` at a time, and report.md gains one table.

- Folders: the main model in DIR (as without a comparison), variant ``name`` in DIR/compare/<name>/ — each a
  complete run folder (checkpoint, metrics, manifest, report), so ``--force`` and ``--resume`` act on each as on
  any run (``--resume`` resumes a variant whose checkpoint exists and starts one that has none).
- Before any child starts, every model's stages and components are checked (`check_stages`, registry look-ups):
  a comparison that cannot run writes nothing.
- Threads: the usable cores are split among the running children (OMP_NUM_THREADS), at least one each; when a
  model ends and none is waiting, the ones still running take over its cores (the child's `GROW_SIGNAL`
  handler sets torch's thread count), so the last model of a comparison does not run on one core of two.
- Progress: only this process prints, one line per event (a model starts, passes a quarter of its steps, samples,
  evaluates, ends), so concurrent models never interleave bars.
- Ctrl-C or an error here: every child is interrupted (SIGINT, so its run folder is settled as after a Ctrl-C of
  ``prime run``), then killed if it has not exited after `STOP_GRACE_S`. A failed variant is a "failed" row and
  the run exits non-zero; a failed main model stops the others (there is no report to put the table in).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time

import attrs

from ..errors import PrimeError, first_line
from .build import build_dataset, build_model, build_training_loss, resolve_sizes
from .compare_child import GROW_SIGNAL, READY
from .compare_table import failed_row, model_row, table_text
from .pipeline import check_stages, run_pipeline
from .report import write_report_markdown
from .rundir import CHECKPOINT_NAME, claim, local_out_dir, write_text_atomic

STOP_GRACE_S = 20.0
POLL_S = 0.5
COMPARE_FOLDER = "compare"
_PHASES = {"[1/3]": "training", "[2/3]": "sampling", "[3/3]": "evaluating"}


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask), the default of ``--jobs``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Job:
    """One model of the comparison: its config, folder, child process and what the child printed."""

    def __init__(self, name: str, config, folder: str, overrides=(), main: bool = False):
        self.name, self.config, self.folder, self.overrides, self.main = name, config, folder, overrides, main
        self.proc: subprocess.Popen | None = None
        self.lines: collections.deque[tuple[str, str]] = collections.deque(maxlen=400)  # (stream, line)
        self.readers: list[threading.Thread] = []
        self.phase, self.quarter, self.threads, self.is_ready = "waiting", 0, 0, False

    def start(self, resume: bool, force: bool, threads: int) -> None:
        flags = ["--resume"] if resume else ["--force"] if force else []
        self.spawn([sys.executable, "-m", "prime_core.runs.compare_child", "--out", self.folder, *flags], threads)
        self.proc.stdin.write(self.config.to_json() + "\n")  # one line; stdin stays open for `grow`
        self.proc.stdin.flush()

    def spawn(self, argv: list[str], threads: int) -> None:
        """Start ``argv`` with ``threads`` OpenMP threads and one reader per output stream (the two pipes never
        block each other, and each line keeps its stream)."""
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "PYTHONUNBUFFERED": "1"}
        # a session of its own: the terminal's Ctrl-C reaches only this process, which stops the children itself
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True, start_new_session=True)
        self.readers = [threading.Thread(target=self._read, args=(pipe, name), daemon=True)
                        for pipe, name in ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr"))]
        for reader in self.readers:
            reader.start()
        self.threads = threads

    def grow(self, threads: int) -> bool:
        """Let the child use ``threads`` torch threads from now on: the number on its stdin, then `GROW_SIGNAL`
        (only once it said `READY`: before that the signal's default action would end it). True if it was told."""
        if threads <= self.threads or self.proc.poll() is not None or not self.is_ready:
            return False
        try:
            self.proc.stdin.write(f"{threads}\n")
            self.proc.stdin.flush()
            os.kill(self.proc.pid, GROW_SIGNAL)
        except (BrokenPipeError, ProcessLookupError):  # it ended meanwhile
            return False
        self.threads = threads
        return True

    def _read(self, pipe, stream: str) -> None:
        for line in pipe:
            line = line.rstrip("\n")
            if line == READY:
                self.is_ready = True
            else:
                self.lines.append((stream, line))

    def join_readers(self, timeout: float) -> None:
        for reader in self.readers:
            reader.join(timeout)

    def error(self) -> str:
        """The child's one-line error ("prime: error: …" without the prefix), else its last line, else its code."""
        for _, line in reversed(self.lines):
            for prefix in ("prime: error: ", "prime: "):
                if line.startswith(prefix):
                    return line[len(prefix):]
        last = next((line for _, line in reversed(self.lines) if line.strip()), None)
        return last or f"exit code {self.proc.returncode}"

    def stop(self) -> None:
        """Interrupt the child (it settles its run folder), kill it after `STOP_GRACE_S`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass


def run_main_job(config, out_dir: str, *, resume: bool = False, force: bool = False, progress: bool = True,
                 jobs: int | None = None, compare: bool = True, registry=None, echo=print) -> dict:
    """``prime run``: the main job of `run_pipeline`, with the config's ``[[compare]]`` variants unless
    ``compare`` is False (``--no-compare``) or the run is one rank of torchrun (a comparison is one process's
    work: there the variants are skipped, said in one line)."""
    from ..plugin.default import get_registry

    registry = registry or get_registry()
    if config.compare and compare and "WORLD_SIZE" in os.environ:
        if os.environ.get("RANK", "0") == "0":
            echo("[[compare]] skipped under torchrun: run the comparison in one process (prime run --jobs N)")
        compare = False
    if not (config.compare and compare):
        return run_pipeline(config, out_dir, resume=resume, force=force, progress=progress, registry=registry,
                            echo=echo)
    return run_comparison(config, out_dir, jobs=jobs, resume=resume, force=force, registry=registry, echo=echo)


def check_models(todo: list["_Job"], registry) -> None:
    """Every model's stages (`check_stages`) and components (built once, untrained: names, options, block size,
    training loss, trainer), with the data set built once (a comparison's models share [data]); a failure is one
    line naming the model."""
    dataset = build_dataset(todo[0].config, registry)
    for job in todo:
        try:
            check_stages(job.config, registry, dataset)
            build_model(resolve_sizes(job.config, dataset.num_classes, dataset.length), registry)
            build_training_loss(job.config.train.loss, registry)
            registry.get("trainer", job.config.train.trainer)
        except PrimeError as exc:
            what = "the main model" if job.main else f"[[compare]] {job.name!r}"
            raise PrimeError(f"{what}: {first_line(exc)}") from None


def run_comparison(config, out_dir: str, *, jobs: int | None, resume: bool, force: bool, registry,
                   echo=print) -> dict:
    """Train, sample and evaluate the main model and every ``config.compare`` variant (module docstring); returns
    the main model's report with its ``comparison`` (rows, jobs, threads, failed count)."""
    out_dir = local_out_dir(out_dir)
    todo = [_Job("main", attrs.evolve(config, compare=()), out_dir, main=True)]
    todo += [_Job(v.name, config.variant_config(v), os.path.join(out_dir, COMPARE_FOLDER, v.name), v.set)
             for v in config.compare]
    check_models(todo, registry)  # before anything is written
    jobs = min(jobs or usable_cores(), len(todo))
    threads = max(1, usable_cores() // jobs)
    echo(f"comparing {len(todo)} models ({', '.join(j.name for j in todo)}), {jobs} at a time, {threads} torch "
         f"thread(s) each → {out_dir}")
    t0 = time.monotonic()
    with claim(os.path.join(out_dir, COMPARE_FOLDER)):  # one comparison of this folder at a time
        _run_all(todo, jobs, threads, resume, force, echo, t0)
        main = todo[0]
        if main.proc.returncode != 0:
            raise PrimeError(f"the main model failed ({main.error()}); no report, so no comparison")
        rows = [_row(job, out_dir) for job in todo]
        comparison = {"jobs": jobs, "threads_per_job": threads, "wall_seconds": time.monotonic() - t0,
                      "failed": sum(r["status"] != "ok" for r in rows), "rows": rows}
        report = _write_comparison(config, out_dir, comparison)
    _echo_output(main, echo)
    echo("comparison:")
    echo(table_text(comparison))
    if comparison["failed"]:
        bad = [r["model"] for r in rows if r["status"] != "ok"]
        print(f"prime: error: {len(bad)} of {len(rows)} compared models failed ({', '.join(bad)}): see "
              f"{os.path.join(out_dir, 'report.md')}", file=sys.stderr)
    return report


def _run_all(todo: list[_Job], jobs: int, threads: int, resume: bool, force: bool, echo, t0: float) -> None:
    """Run the children ``jobs`` at a time, printing progress; on any exception (Ctrl-C) stop them all."""
    waiting, running = list(todo), []
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                job = waiting.pop(0)
                has_ckpt = os.path.exists(os.path.join(job.folder, CHECKPOINT_NAME))
                # a variant added since the last run has nothing to resume: it starts
                job.start(resume and (job.main or has_ckpt), force, threads)
                echo(f"  {_clock(t0)} {job.name}: started")
                running.append(job)
            time.sleep(POLL_S)
            for job in list(running):
                _progress(job, echo, t0)
                if job.proc.poll() is None:
                    continue
                job.join_readers(5)
                running.remove(job)
                ok = job.proc.returncode == 0
                echo(f"  {_clock(t0)} {job.name}: " + ("done" if ok else f"failed: {job.error()}"))
                if job.main and not ok:
                    raise _MainFailed
                if not waiting:  # its cores go to the models still running
                    for other in running:
                        if other.grow(max(threads, usable_cores() // len(running))):
                            echo(f"  {_clock(t0)} {other.name}: {other.threads} torch threads")
    except _MainFailed:
        for job in running:
            job.stop()
    except BaseException:
        for job in running:
            job.stop()
        raise


class _MainFailed(Exception):
    """The main model's child failed: the other children are stopped."""


def _progress(job: _Job, echo, t0: float) -> None:
    """One line when the child enters a stage, and at each quarter of its training steps."""
    phase = next((_PHASES[line[:5]] for _, line in reversed(job.lines) if line[:5] in _PHASES), job.phase)
    if phase != job.phase and phase != "training":
        echo(f"  {_clock(t0)} {job.name}: {phase}")
    job.phase = phase
    if phase != "training":
        return
    step, steps = _last_step(job.folder), job.config.train.steps
    quarter = min(4, 4 * step // steps) if step else 0
    if quarter > job.quarter:
        job.quarter = quarter
        echo(f"  {_clock(t0)} {job.name}: step {step}/{steps}")


def _last_step(folder: str) -> int:
    """The last logged training step of a run folder's metrics.jsonl (0 if none yet)."""
    try:
        with open(os.path.join(folder, "metrics.jsonl"), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            tail = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return 0
    for line in reversed(tail):
        try:
            row = json.loads(line)
        except ValueError:
            continue  # cut by the seek or being written
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            return row["step"]
    return 0


def _clock(t0: float) -> str:
    s = int(time.monotonic() - t0)
    return f"{s // 60:3d}:{s % 60:02d}"


def _row(job: _Job, out_dir: str) -> dict:
    folder = os.path.relpath(job.folder, out_dir) if not job.main else "."
    if job.proc.returncode != 0:
        return failed_row(job.name, job.error(), folder=folder, overrides=job.overrides, main=job.main)
    with open(os.path.join(job.folder, "report.json"), encoding="utf-8") as fh:
        report = json.load(fh)
    return {**model_row(job.name, report, folder=folder, overrides=job.overrides, main=job.main),
            "threads_at_end": job.threads}


def _write_comparison(config, out_dir: str, comparison: dict) -> dict:
    """Add the comparison to the main model's report.json and report.md (each replaced whole, under the run
    folder's lock)."""
    with claim(out_dir):
        path = os.path.join(out_dir, "report.json")
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
        report["comparison"] = comparison
        png = os.path.join(out_dir, "samples.png")
        write_text_atomic(path, json.dumps(report, indent=2))
        write_report_markdown(os.path.join(out_dir, "report.md"), attrs.evolve(config, compare=()), report,
                              png if os.path.exists(png) else None)
    return report


def _echo_output(job: _Job, echo) -> None:
    """What the main model's `prime run` printed (its report summary, samples, report path) on the stream it used:
    its stdout through ``echo``, its stderr (warnings) to stderr, where `prime run` alone prints them."""
    for stream, line in job.lines:
        if stream == "stderr":
            print(line, file=sys.stderr)
        elif line[:5] not in _PHASES:
            echo(line)
