"""End-to-end CLI tests on a tiny toy config: train → sample → eval, JSON output, one-line errors."""

import json
import shutil
import os
import subprocess
import sys

import pytest

TINY = ["--set", "data.dataset=toy-markov", "--set", "data.options={num_classes = 6, length = 3, num_eval = 64}",
        "--set", "model.width=8", "--set", "model.backbone_options={hidden = 32, depth = 1}",
        "--set", "train.steps=30", "--set", "train.batch_size=32", "--set", "train.checkpoint_every=10",
        "--set", "eval.mc_samples=1", "--set", "eval.tstep_steps=4", "--set", "sample.num_samples=8"]


def prime(*args, cwd=None, ok=True):
    env = dict(os.environ, PRIME_LOAD_PLUGINS="")  # core only: independent of other installed plugins
    out = subprocess.run([sys.executable, "-m", "prime_core", *args], capture_output=True, text=True, cwd=cwd,
                         env=env)
    if ok:
        assert out.returncode == 0, out.stderr
    return out


def assert_one_line_error(out, pattern):
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prime: error:"), out.stderr
    assert pattern in lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("run")
    prime("train", "--out", str(out_dir), "--quiet", *TINY)
    return out_dir


def test_train_writes_checkpoint_metrics_and_plot(trained):
    # and the manifest of what the run wrote (prime_core.runs.rundir: --force removes only what it lists)
    assert sorted(p for p in os.listdir(trained)) == [".prime-manifest.json", "checkpoint.safetensors", "loss.png",
                                                      "metrics.jsonl"]
    rows = [json.loads(line) for line in open(trained / "metrics.jsonl")]
    assert rows[-1]["step"] == 30 and rows[-1]["loss_name"] == "nelbo"


def test_sample_and_eval_json(trained):
    ckpt = str(trained / "checkpoint.safetensors")
    s = json.loads(prime("sample", ckpt, "-n", "5", "--steps", "6", "--json", "--quiet").stdout)
    assert len(s["tokens"]) == 5 and all(0 <= t < 6 for row in s["tokens"] for t in row)
    fixed = json.loads(prime("sample", ckpt, "-n", "3", "--steps", "6", "--fix", "0:5", "--json", "--quiet").stdout)
    assert all(row[0] == 5 for row in fixed["tokens"])
    e = json.loads(prime("eval", ckpt, "--json").stdout)
    by_name = {m["name"]: m for m in e["metrics"]}
    assert by_name["nelbo"]["is_bound"] and by_name["tstep-nelbo"]["is_bound"]
    assert not by_name["joint-loss"]["is_bound"] and "perplexity_upper_bound" not in by_name["joint-loss"]
    nelbo = by_name["nelbo"]  # a Monte-Carlo estimate of a bound on the same rows as the exact NLL
    assert nelbo["value"] + 4 * nelbo["stderr"] >= e["exact_nll"]["value"]
    text = prime("eval", ckpt).stdout
    assert "PPL ≤" in text and "not a bound" in text


def test_resume_continues_and_refuses_a_different_config(trained, tmp_path):
    out = prime("train", "--out", str(trained), "--quiet", *TINY, ok=False)
    assert_one_line_error(out, "--resume")
    out = prime("train", "--out", str(trained), "--resume", "--quiet", *TINY, "--set", "model.ell=1", ok=False)
    assert_one_line_error(out, "different config: model.ell")
    out = prime("train", "--out", str(tmp_path / "none"), "--resume", "--quiet", *TINY, ok=False)
    assert_one_line_error(out, "nothing to resume")


@pytest.mark.parametrize("args,pattern", [
    (["train", "--set", "model.schedule=nope"], "unknown schedule 'nope'; available:"),
    (["train", "--set", "model.width=7", "--set", "model.ell=2"], "divisible"),
    (["train", "--set", "model.ell"], "section.key=value"),
    (["sample", "missing.safetensors"], "checkpoint not found"),
    (["eval", "README.md"], "not a prime checkpoint"),
    (["idle-steps", "--length", "0", "--ell", "2", "--steps", "4"], "--length: must lie in [1,"),
])
def test_user_errors_are_one_line_with_exit_code_2(tmp_path, args, pattern):
    (tmp_path / "README.md").write_text("hello")
    out = prime(*args, "--out", str(tmp_path / "o"), cwd=tmp_path, ok=False) if args[0] == "train" else \
        prime(*args, cwd=tmp_path, ok=False)
    assert_one_line_error(out, pattern)
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_out_of_range_fixed_token(trained):
    out = prime("sample", str(trained / "checkpoint.safetensors"), "--fix", "0:99", "--quiet", ok=False)
    assert_one_line_error(out, "--fix token 99 at position 0 is outside [0, 5]")


def test_plugins_listing_is_json():
    rows = json.loads(prime("plugins", "--all", "--json").stdout)
    core = next(r for r in rows if r["distribution"] == "prime-core")
    assert core["builtin"] and "register_schedules" in core["hooks"]
    assert "cosine" in core["components"]["schedule"]


def test_resume_may_extend_training(trained, tmp_path):
    """train.steps (and log/checkpoint frequency) may change on --resume: the run continues from its step."""
    run = tmp_path / "extended"
    shutil.copytree(trained, run)
    prime("train", "--out", str(run), "--resume", "--quiet", *TINY, "--set", "train.steps=40")
    steps = [json.loads(line)["step"] for line in open(run / "metrics.jsonl")]
    assert steps[-1] == 40 and steps == sorted(set(steps))


def test_sample_without_buildable_dataset_prints_ids(trained, monkeypatch, capsys):
    """A checkpoint whose data set cannot be built here still samples (as ids); --out, which renders, refuses."""
    import prime_core.runs.build
    from prime_core.cli.app import main
    from prime_core.errors import PrimeError
    from prime_core.plugin.default import get_registry

    def unavailable(*args, **kwargs):
        raise PrimeError("image folder not found: /elsewhere")

    get_registry()  # import every component first: a module importing the function now would keep the stand-in
    monkeypatch.setattr(prime_core.runs.build, "dataset_for_checkpoint", unavailable)
    ckpt = str(trained / "checkpoint.safetensors")
    assert main(["sample", ckpt, "-n", "2", "--steps", "4", "--quiet", "--json"]) == 0
    captured = capsys.readouterr()
    decoded = json.loads(captured.out)["decoded"]
    assert len(decoded) == 2 and all(len(row.split()) == 3 for row in decoded)
    assert "samples shown as token ids (image folder not found" in captured.err
    assert main(["sample", ckpt, "-n", "2", "--steps", "4", "--quiet", "--out", str(trained / "s")]) == 2
    assert not (trained / "s").exists()


def test_device_cpu_on_train_run_sample_eval(trained, tmp_path):
    ckpt = str(trained / "checkpoint.safetensors")
    on_cpu = json.loads(prime("sample", ckpt, "-n", "4", "--steps", "5", "--device", "cpu", "--json", "--quiet").stdout)
    default = json.loads(prime("sample", ckpt, "-n", "4", "--steps", "5", "--json", "--quiet").stdout)
    assert on_cpu["tokens"] == default["tokens"] or __import__("torch").cuda.is_available()
    e = json.loads(prime("eval", ckpt, "--device", "cpu", "--json").stdout)
    assert {m["name"] for m in e["metrics"]} == {"nelbo", "tstep-nelbo", "joint-loss"}
    short = ["--set", "train.steps=2", "--set", "train.log_every=1"]
    prime("train", "--out", str(tmp_path / "t"), "--quiet", "--device", "cpu", *TINY, *short)
    assert os.path.exists(tmp_path / "t" / "checkpoint.safetensors")
    # a resume may move to another device: where a run happens is not part of its config
    prime("train", "--out", str(tmp_path / "t"), "--quiet", "--resume", "--device", "auto", *TINY,
          "--set", "train.steps=3", "--set", "train.log_every=1")
    prime("run", "--out", str(tmp_path / "r"), "--quiet", "--device", "cpu", *TINY, *short)
    report = json.load(open(tmp_path / "r" / "report.json"))
    assert report["sampling"]["num_samples"] == 8


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the refusal needs a machine without CUDA")
@pytest.mark.parametrize("command", ["sample", "eval", "train", "run"])
def test_device_cuda_without_cuda_and_bogus_are_one_line(trained, tmp_path, command):
    target = [str(trained / "checkpoint.safetensors")] if command in ("sample", "eval") else \
        ["--out", str(tmp_path / "o"), *TINY]
    out = prime(command, *target, "--device", "cuda", ok=False, cwd=tmp_path)
    assert_one_line_error(out, "argument --device: 'cuda' asks for CUDA, which is not available here")
    out = prime(command, *target, "--device", "bogus", ok=False, cwd=tmp_path)
    assert_one_line_error(out, "argument --device: must be auto, cpu, cuda or cuda:N, got 'bogus'")
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_device_with_an_exported_runtime_is_refused(trained):
    out = prime("sample", str(trained / "checkpoint.safetensors"), "--runtime", "onnxruntime", "--device", "auto",
                ok=False)
    assert_one_line_error(out, "--device auto places the eager model (--runtime torch)")


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_device_cuda_sample_and_eval(trained):
    ckpt = str(trained / "checkpoint.safetensors")
    s = json.loads(prime("sample", ckpt, "-n", "4", "--steps", "5", "--device", "cuda", "--json", "--quiet").stdout)
    assert len(s["tokens"]) == 4 and all(0 <= t < 6 for row in s["tokens"] for t in row)
    gpu = json.loads(prime("eval", ckpt, "--device", "cuda", "--json").stdout)
    cpu = json.loads(prime("eval", ckpt, "--device", "cpu", "--json").stdout)
    for a, b in zip(gpu["metrics"], cpu["metrics"]):  # the same draws (CPU generators): equal up to rounding
        assert a["name"] == b["name"] and abs(a["value"] - b["value"]) < 1e-3
