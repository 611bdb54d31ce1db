"""Run folders (``--out`` of ``prime train`` / ``prime run``, built-in "simple" trainer): one writer at a time,
``--force`` only after validation, local folders only, bit-identical seeded runs, exact resume without duplicated
log rows. See docs/reliability.md (run folders) for the guarantees these tests check.

Most runs are in-process (`prime_core.cli.app.main`, fast); a second process is used where the point is two processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from prime_core import read_checkpoint
from prime_core.cli.app import main
from prime_core.runs.rundir import LOCK_NAME, MANIFEST_NAME, claim, local_out_dir, read_manifest, trim_metrics
from prime_core.errors import PrimeError

TINY = ["--set", "data.dataset=toy-markov", "--set", "data.options={num_classes = 6, length = 3, num_eval = 64}",
        "--set", "model.width=8", "--set", "model.backbone_options={hidden = 32, depth = 1}",
        "--set", "train.batch_size=32", "--set", "train.log_every=1", "--set", "eval.mc_samples=1",
        "--set", "eval.tstep_steps=4", "--set", "sample.num_samples=4", "--set", "sample.steps=4"]


def steps(n: int, checkpoint_every: int | None = None) -> list[str]:
    return ["--set", f"train.steps={n}", "--set", f"train.checkpoint_every={checkpoint_every or n}"]


def train(out, *extra: str) -> int:
    return main(["train", "--out", str(out), "--quiet", *TINY, *extra])


def one_line_error(capsys, fragment: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("prime: error:") and "\n" not in err and fragment in err, err
    return err


def digests(folder) -> dict[str, str]:
    """name → sha256 of every file in ``folder``: "changes nothing" is checked on these."""
    return {p: hashlib.sha256(open(os.path.join(folder, p), "rb").read()).hexdigest()
            for p in sorted(os.listdir(folder))}


def tensors(folder) -> dict[str, torch.Tensor]:
    return read_checkpoint(os.path.join(folder, "checkpoint.safetensors")).tensors


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def metric_rows(folder) -> list[dict]:
    return [json.loads(line) for line in open(os.path.join(folder, "metrics.jsonl"), encoding="utf-8")]


# ------------------------------------------------------------------------------------------------ single writer
def _start_and_pause(out, *extra: str) -> subprocess.Popen:
    """`prime train` in another process, stopped (SIGSTOP) once it has logged its first step: it still holds the
    lock, and it cannot reach its checkpoint while the test looks at the folder."""
    env = dict(os.environ, PRIME_LOAD_PLUGINS="", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "prime_core", "train", "--out", str(out), "--quiet", *TINY,
                             *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics, deadline = out / "metrics.jsonl", time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.exists() and metrics.read_text().count("\n") >= 1:
            os.kill(proc.pid, signal.SIGSTOP)
            return proc
        time.sleep(0.002)
    proc.kill()
    raise AssertionError(f"the first run never logged a step: {proc.stderr.read().decode()[-2000:]}")


def test_second_writer_is_refused_then_a_killed_run_restarts_as_if_never_run(tmp_path, capsys):
    """Two `prime train` into one --out: the second gets one line naming the first's pid and changes nothing. The
    first, SIGKILLed before its first checkpoint, leaves a stale lock file that blocks nobody, and the restarted
    run equals an uninterrupted one bit for bit (the seed fixes initial weights, data order, masks, dropout)."""
    run, whole = tmp_path / "run", tmp_path / "whole"
    first = _start_and_pause(run, *steps(60))
    try:
        assert not (run / "checkpoint.safetensors").exists(), "the first run finished before it could be paused"
        before = digests(run)
        for extra in ([], ["--force"], ["--resume"]):
            assert train(run, *steps(60), *extra) == 2
            one_line_error(capsys, f"{run} is being written by another prime process (pid {first.pid})")
            assert digests(run) == before  # nothing written, nothing deleted
    finally:
        first.kill()  # SIGKILL: the kernel releases the lock, the lock file stays behind
        first.wait(timeout=30)
    assert (run / LOCK_NAME).exists() and not (run / "checkpoint.safetensors").exists()

    assert train(run, *steps(60)) == 0  # no --force needed: nothing was checkpointed
    assert train(whole, *steps(60)) == 0
    assert_bit_identical(tensors(run), tensors(whole))
    assert metric_rows(run) and [r["loss"] for r in metric_rows(run)] == [r["loss"] for r in metric_rows(whole)]
    # lock file gone; the manifest lists what the runs wrote (the killed one had recorded its names up front)
    assert sorted(os.listdir(run)) == [MANIFEST_NAME, "checkpoint.safetensors", "loss.png", "metrics.jsonl"]
    assert read_manifest(str(run)) == ({"checkpoint.safetensors", "loss.png", "metrics.jsonl"}, set())


def test_prime_run_holds_its_folder_until_the_report_is_written(tmp_path, monkeypatch, capsys):
    """`prime run` keeps the lock through sampling, evaluation and the report, not only while training."""
    import prime_core.runs.pipeline as pipeline

    out, seen = tmp_path / "r", {}
    evaluate = pipeline.evaluate_report

    def evaluate_while_another_trains(*args, **kwargs):
        env = dict(os.environ, PRIME_LOAD_PLUGINS="")
        seen["other"] = subprocess.run([sys.executable, "-m", "prime_core", "train", "--out", str(out), "--force",
                                        "--quiet", *TINY, *steps(5)], capture_output=True, text=True, env=env)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(pipeline, "evaluate_report", evaluate_while_another_trains)
    assert main(["run", "--out", str(out), "--quiet", *TINY, *steps(10)]) == 0
    other = seen["other"]
    assert other.returncode == 2, other.stderr
    assert f"is being written by another prime process (pid {os.getpid()})" in other.stderr
    assert (out / "report.md").exists() and [r["step"] for r in metric_rows(out)] == list(range(1, 11))
    assert not (out / LOCK_NAME).exists()


def test_a_lock_file_replaced_while_locking_is_locked_again(tmp_path, monkeypatch):
    """The lock guards the file the path names: if the previous holder unlinks the file this claim opened (it
    releases) before the flock, a lock on the orphaned file would guard nothing, so the claim locks the new one."""
    import prime_core.runs.rundir as rundir

    out, calls, real_flock = tmp_path / "o", [], rundir.fcntl.flock

    def flock(fd, op):
        if not calls:  # between open() and flock(): the old holder releases, a third process creates a new file
            os.unlink(out / LOCK_NAME)
            (out / LOCK_NAME).write_text("")
        calls.append(fd)
        return real_flock(fd, op)

    monkeypatch.setattr(rundir.fcntl, "flock", flock)
    with claim(str(out)):
        fd = rundir._HELD[os.path.realpath(out)].fd
        assert len(calls) == 2 and os.fstat(fd).st_ino == os.stat(out / LOCK_NAME).st_ino
        assert (out / LOCK_NAME).read_text() == str(os.getpid())
    assert not out.exists()  # created by the claim and left empty: removed


def test_a_deferred_claim_keeps_the_lock_a_nested_claim_took(tmp_path):
    """`prime run` under torchrun: the pipeline defers locking to the trainer (rank 0, once the process group can
    tell the others) and keeps the lock the trainer took until the report is written."""
    import fcntl

    out = tmp_path / "o"

    def locked_by_someone() -> bool:
        fd = os.open(out / LOCK_NAME, os.O_RDWR)  # a separate open file: flock conflicts even within a process
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    with claim(str(out), lock=False):
        assert not out.exists()  # nothing taken, nothing created yet
        with claim(str(out)):
            assert locked_by_someone()
        assert locked_by_someone()  # the trainer is done; the pipeline still holds the folder
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ --force
def test_force_keeps_the_old_run_until_the_new_one_is_valid(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--quiet", *TINY, *steps(6, 3)]) == 0  # writes report.md too
    capsys.readouterr()
    (out / "notes.txt").write_text("the user's own file")
    before = digests(out)
    for bad in ("train.loss=nope", "model.schedule=nope"):
        assert train(out, *steps(6, 3), "--force", "--set", bad) == 2
        capsys.readouterr()
        assert digests(out) == before, bad  # the old checkpoint, log, plot and report are all still there
    assert train(out, *steps(4, 2), "--force") == 0
    assert [r["step"] for r in metric_rows(out)] == [1, 2, 3, 4]
    assert read_checkpoint(str(out / "checkpoint.safetensors")).meta["train_state"]["step"] == 4
    assert not (out / "report.md").exists()  # the old run's report described another model
    assert (out / "notes.txt").read_text() == "the user's own file"  # prime deletes only what prime wrote
    # (a report.md prime did not write is never deleted: tests/test_bad_inputs_runs.py)


def test_a_failed_run_leaves_no_folder_behind_but_never_deletes_the_users(tmp_path, capsys):
    assert train(tmp_path / "new" / "deep", "--set", "train.loss=nope") == 2
    one_line_error(capsys, "train.loss='nope'")
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    assert main(["run", "--out", str(mine), "--quiet", *TINY, "--set", "model.schedule=nope"]) == 2
    one_line_error(capsys, "unknown schedule 'nope'")
    assert mine.is_dir() and not os.listdir(mine)


# ------------------------------------------------------------------------------------------------ --out
@pytest.mark.parametrize("command", ["train", "run"])
@pytest.mark.parametrize("url", ["memory://run", "s3://bucket/run", "gs://b/r", "simplecache::file:///tmp/x"])
def test_out_urls_that_cannot_hold_every_artifact_are_refused(tmp_path, monkeypatch, capsys, command, url):
    monkeypatch.chdir(tmp_path)
    assert main([command, "--out", url, "--quiet", *TINY, *steps(2)]) == 2
    one_line_error(capsys, "run folders must be local (a path or file:// URL)")
    assert os.listdir(tmp_path) == []  # not even a local folder named after the URL
    import fsspec

    assert not fsspec.filesystem("memory").exists("/run")


def test_file_url_is_the_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "a"
    assert main(["run", "--out", f"file://{out}", "--quiet", *TINY, *steps(4)]) == 0
    assert os.listdir(tmp_path) == ["runs"]  # nothing under ./file:
    assert {"checkpoint.safetensors", "metrics.jsonl", "report.md", "report.json"} <= set(os.listdir(out))
    assert local_out_dir("file://localhost/tmp/x") == "/tmp/x"
    with pytest.raises(PrimeError, match="must name a local path"):
        local_out_dir("file://otherhost/tmp/x")


def test_out_naming_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    assert train(path, *steps(2)) == 2
    one_line_error(capsys, "is an existing file; it must be a folder")
    assert path.read_text() == "keep me"


# ------------------------------------------------------------------------------------------------ determinism, resume
def test_two_fresh_runs_of_one_config_are_bit_identical(tmp_path):
    assert train(tmp_path / "a", *steps(8)) == 0
    torch.manual_seed(12345)  # whatever the caller's global RNG state: the config's seed decides
    assert train(tmp_path / "b", *steps(8)) == 0
    assert_bit_identical(tensors(tmp_path / "a"), tensors(tmp_path / "b"))
    assert train(tmp_path / "c", *steps(8), "--set", "train.seed=1") == 0
    a, c = tensors(tmp_path / "a"), tensors(tmp_path / "c")
    assert any(not torch.equal(a[k], c[k]) for k in a if k.startswith("model/"))  # the seed matters


def test_resume_replays_exactly_and_logs_every_step_once(tmp_path):
    """A run killed after its step-4 checkpoint but after logging step 12 (and half a line of step 13), resumed:
    the same weights and the same log as the uninterrupted run, each step once."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert train(whole, *steps(12, 4)) == 0
    assert train(killed, *steps(4)) == 0  # its checkpoint is the uninterrupted run's step-4 state
    shutil.copy(whole / "metrics.jsonl", killed / "metrics.jsonl")  # the log had run ahead of the checkpoint
    with open(killed / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 13, "lo')
    assert train(killed, *steps(12, 4), "--resume") == 0
    assert_bit_identical(tensors(killed), tensors(whole))
    rows, ref = metric_rows(killed), metric_rows(whole)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert [(r["loss"], r["lr"]) for r in rows] == [(r["loss"], r["lr"]) for r in ref]


def test_trim_metrics_keeps_rows_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n\n[3]\n{"step": 3}\n{"st')
    trim_metrics(str(path), 2)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    trim_metrics(str(path), 0)
    assert not path.exists()


def test_prompts_on_a_data_set_without_text_are_refused_before_training(tmp_path, capsys):
    """sample.prompts need the data set's TextPrompts capability: one line, exit 2, nothing written."""
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--quiet", *TINY, *steps(2), "--set", 'sample.prompts=["Emma"]']) == 2
    one_line_error(capsys, "sample.prompts are text, but data set 'toy-markov' has no tokenizer")
    assert not out.exists()
