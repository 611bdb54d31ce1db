"""Issue 14's rows, one case each: a careless or hostile command line gets one line on stderr, exit code 2, and
nothing written — never a silently replaced value, never a bound from zero samples, never a traceback.

(The checkpoint reader's and the run folder's cases live in test_bad_inputs_checkpoint.py and
test_run_folder.py.)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

TINY = ["--set", "data.dataset=toy-markov", "--set", "data.options={num_classes = 6, length = 3, num_eval = 16}",
        "--set", "model.width=8", "--set", "model.backbone_options={hidden = 16, depth = 1}",
        "--set", "train.steps=4", "--set", "train.batch_size=8", "--set", "eval.mc_samples=1",
        "--set", "eval.tstep_steps=4", "--set", "sample.num_samples=4", "--set", "sample.steps=4"]


def prime(*args, env=None, in_process=True):
    """Run ``prime ARGS``: in this process by default (fast: torch is imported once), or as a real process."""
    full_env = {k: v for k, v in os.environ.items() if k != "PRIME_DEBUG"}
    full_env.update(PRIME_LOAD_PLUGINS="", **(env or {}))  # core only: independent of installed plugins
    if not in_process:
        return subprocess.run([sys.executable, "-m", "prime_core", *args], capture_output=True, text=True,
                              env=full_env, timeout=300)
    from prime_core.cli import app as cli

    out, err, saved = io.StringIO(), io.StringIO(), dict(os.environ)
    os.environ.clear()
    os.environ.update(full_env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as exc:  # argparse's --help and its one-line errors
                code = exc.code
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_refused(out, *fragments):
    """Exit 2, exactly one stderr line starting "prime: error:", naming what was wrong; nothing on stdout."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert len(lines) == 1 and lines[0].startswith("prime: error:"), out.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in out.stderr and out.stdout == ""


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    done = prime("train", "--out", str(out), "--quiet", *TINY, in_process=False)
    assert done.returncode == 0, done.stderr
    return str(out / "checkpoint.safetensors")


# ------------------------------------------------------------------------------------------------ prime eval
@pytest.mark.parametrize("args, fragment", [
    (["--mc", "-1"], "--mc: must lie in [1, 100000], got -1"),  # printed "PPL ≤ 1.0000" from zero draws
    (["--mc", "0"], "--mc: must lie in [1,"),                  # fell back to the config
    (["--mc", "1.5"], "--mc: must be a whole number"),
    (["--steps", "0"], "--steps: must lie in [1,"),
    (["--max-sequences", "0"], "--max-sequences: must lie in [1,"),
    (["--max-sequences", "-1"], "--max-sequences: must lie in [1,"),  # silently dropped the last row
    (["--seed", "-3"], "--seed: must lie in [0,"),
])
def test_eval_refuses_bad_counts(ckpt, args, fragment):
    assert_refused(prime("eval", ckpt, *args, in_process=args[0] != "--mc"), fragment)


def test_a_bound_from_zero_draws_is_impossible_in_the_library(ckpt):
    from prime_core.errors import PrimeError
    from prime_core.runs.evaluate import evaluate_report

    for kwargs in ({"mc_samples": 0}, {"mc_samples": -1}, {"steps": 0}, {"max_sequences": 0},
                   {"max_sequences": -1}):
        with pytest.raises(PrimeError, match="must be a whole number ≥ 1"):
            evaluate_report(ckpt, **kwargs)


def test_eval_defaults_come_from_the_config_only_when_left_out(ckpt):
    report = json.loads(prime("eval", ckpt, "--json").stdout)
    assert report["mc_samples"] == 1 and report["sequences"] == 16
    report = json.loads(prime("eval", ckpt, "--json", "--mc", "2", "--max-sequences", "5").stdout)
    assert report["mc_samples"] == 2 and report["sequences"] == 5


# ------------------------------------------------------------------------------------------------ prime sample
@pytest.mark.parametrize("args, fragment", [
    (["--steps", "0"], "--steps: must lie in [1,"),                    # became 64
    (["-n", "0"], "--num-samples: must lie in [1,"),                   # became 8
    (["-n", "-1"], "--num-samples: must lie in [1,"),                  # "got 0 seeds for -1 samples"
    (["--temperature", "0"], "--temperature: must be a finite number in (0, 100]"),  # became 1
    (["--temperature", "nan"], "--temperature: must be a finite number"),            # all-BOS text, exit 0
    (["--temperature", "inf"], "--temperature: must be a finite number"),
    (["--temperature", "-1"], "--temperature: must be a finite number"),
    (["--top-p", "0"], "--top-p: must be a finite number in (0, 1]"),  # became 1
    (["--top-p", "1.5"], "--top-p: must be a finite number in (0, 1]"),
    (["--top-p", "nan"], "--top-p: must be a finite number"),
    (["--seed", "1e20"], "--seed: must be a whole number"),            # "Overflow when unpacking long long"
    (["--seed", "100000000000000000000"], "--seed: must lie in [0, 4294967295]"),
    (["--steps", "1e9"], "--steps: must be a whole number"),
    (["--steps", "1000000000"], "--steps: must lie in [1, 1000000]"),  # allocated 8 GB first
    (["--fix", "0:-5"], "--fix token -5 at position 0 is outside [0, 5]"),  # ignored
    (["--fix", "0:6"], "--fix token 6 at position 0 is outside [0, 5] (C = 6)"),
    (["--fix", "3:1"], "--fix position 3 is outside [0, 2] (L = 3)"),
    (["--fix", "0:1,0:2"], "--fix names position 0 twice"),
    (["--fix", "0-1"], "--fix expects position:token pairs"),
    (["--fix", ""], "--fix expects position:token pairs"),
    (["--step-model", "x.onnx"], "--step-model is the exported step of --runtime"),
    (["--trajectory"], "--trajectory draws trajectory.png into the --out folder"),
    (["--show", "-1"], "--show: must lie in [0,"),
])
def test_sample_refuses_bad_values(ckpt, tmp_path, args, fragment):
    out_dir = tmp_path / "samples"
    extra = [] if "--trajectory" in args else ["--out", str(out_dir)]
    assert_refused(prime("sample", ckpt, *args, *extra, "--quiet"), fragment)
    assert not out_dir.exists()  # nothing written


def test_sample_uses_given_values_exactly(ckpt):
    s = json.loads(prime("sample", ckpt, "-n", "3", "--steps", "5", "--json", "--quiet").stdout)
    assert len(s["tokens"]) == 3 and s["steps"] == 5


def test_step_model_missing_corrupt_or_foreign(ckpt, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("export.runner")
    missing = prime("sample", ckpt, "--runtime", "onnxruntime", "--step-model", str(tmp_path / "no.onnx"))
    assert_refused(missing, "does not exist or is not a file")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(os.urandom(2000))
    assert_refused(prime("sample", ckpt, "--runtime", "onnxruntime", "--step-model", str(corrupt)),
                   "is not a readable ONNX model")


# ------------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("override, fragment", [
    ("train.steps=2.5", "train.steps must be a whole number, got 2.5"),  # traceback
    ("train.steps=true", "train.steps must be a whole number"),        # ran 1 step
    ("train.steps=0", "train.steps must be ≥ 1"),
    ("train.lr=nan", "train.lr must be a finite number"),
    ("train.seed=-1", "train.seed must be in [0, 4294967295]"),
    ("model.ell=1.0", "model.ell must be a whole number"),
    ("sample.temperature=inf", "sample.temperature must be a finite number"),
    ("eval.mc_samples=0", "eval.mc_samples must be in [1, 100000]"),
    ("model.backbone_options.hidden=-5", "backbone_options.hidden of the mlp backbone must be a whole number ≥ 1"),
    ("model.backbone_options.nope=1", "unexpected keyword argument 'nope'"),
])
def test_train_refuses_bad_config_values(tmp_path, override, fragment):
    out = tmp_path / "run"
    assert_refused(prime("train", "--out", str(out), "--quiet", *TINY, "--set", override), fragment)
    assert not out.exists()


def test_config_files_that_are_not_configs(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[model]\nell = [\n")
    assert_refused(prime("train", "--config", str(broken), "--out", str(tmp_path / "a")), "invalid TOML")
    assert_refused(prime("train", "--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "b")),
                   "config file not found")
    for url, package in (("s3://bucket/c.toml", "s3fs"), ("gs://bucket/c.toml", "gcsfs")):
        assert_refused(prime("train", "--config", url, "--out", str(tmp_path / "c")), "missing", package)
    assert not any((tmp_path / d).exists() for d in "abc")


def test_a_config_that_is_a_list_is_refused():
    from prime_core.runs.config import Config
    from prime_core.errors import ConfigError

    for data in ([1, 2], "model", None, {"model": [1]}):
        with pytest.raises(ConfigError):
            Config.from_dict(data)


# ------------------------------------------------------------------------------------------------ idle-steps
@pytest.mark.parametrize("args, fragment", [
    (["--length", "4", "--ell", "2", "--steps", "1000000000"], "--steps: must lie in [1, 1000000]"),
    (["--length", "0", "--ell", "2", "--steps", "8"], "--length: must lie in [1,"),
    (["--length", "4", "--ell", "0", "--steps", "8"], "--ell: must lie in [1, 64]"),
    (["--length", "100000000", "--ell", "8", "--steps", "8"], "is more than the simulation handles"),
    (["--length", "4", "--ell", "2", "--steps", "8", "--runs", "0"], "--runs: must lie in [1,"),
])
def test_idle_steps_refuses_bad_sizes(args, fragment):
    assert_refused(prime("idle-steps", *args), fragment)


# ------------------------------------------------------------------------------------------------ --debug
def test_debug_shows_the_traceback_and_keeps_the_exit_code(ckpt):
    plain = prime("sample", ckpt, "--fix", "9:0")
    assert_refused(plain, "--fix position 9")
    for out in (prime("sample", ckpt, "--fix", "9:0", "--debug"), prime("--debug", "sample", ckpt, "--fix", "9:0"),
                prime("sample", ckpt, "--fix", "9:0", env={"PRIME_DEBUG": "1"}, in_process=False)):
        assert out.returncode == 2
        assert "Traceback (most recent call last)" in out.stderr
        assert out.stderr.strip().splitlines()[-1] == plain.stderr.strip()


def test_internal_errors_exit_1_with_one_line(monkeypatch, capsys):
    """A bug (not bad input) is exit 1, still one line, and says how to see the traceback."""
    from prime_core.cli import app as cli

    def boom(args):
        raise KeyError("state")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda argv=None: parser)
    parser._subparsers._group_actions[0].choices["idle-steps"].set_defaults(func=boom)
    monkeypatch.delenv("PRIME_DEBUG", raising=False)
    assert cli.main(["idle-steps", "--length", "2", "--ell", "1", "--steps", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prime: internal error: KeyError") and "--debug" in err[0]


def test_sample_out_must_be_a_local_folder(ckpt, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    assert_refused(prime("sample", ckpt, "--out", "memory://samples", "--quiet"), "must be local")
    assert_refused(prime("sample", ckpt, "--out", str(a_file), "--quiet"), "is an existing file")
    assert a_file.read_text() == "mine"
    done = prime("sample", ckpt, "-n", "2", "--out", f"file://{tmp_path}/s", "--quiet")
    assert done.returncode == 0 and (tmp_path / "s" / "samples.json").exists()
