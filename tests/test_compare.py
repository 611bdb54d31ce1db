"""``prime run`` with ``[[compare]]`` variants (prime_core.runs.compare): the table's rows and kinds, a failed
variant, --jobs 1 vs 2, --no-compare, --resume with a new variant, Ctrl-C, and bad entries (one line, exit 2,
nothing written). Tiny toy-markov models; each model runs in a child process (a few seconds each)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from prime_core.cli.app import main
from prime_core.errors import ConfigError
from prime_core.runs.compare_table import headline_bound
from prime_core.runs.config import Config, load_config

# L = 5, ℓ = 2: 10 sub-tokens, too many to enumerate, so the main model's likelihood is a bound ("≤"); the ℓ = 1
# variant has 5 units and is enumerated exactly ("=")
BASE = """
[model]
width = 8
backbone_options = { hidden = 16, depth = 1 }
[data]
dataset = "toy-markov"
options = { num_classes = 6, length = 5, num_eval = 32 }
[train]
steps = STEPS
batch_size = 16
log_every = 1
checkpoint_every = STEPS
[sample]
num_samples = 4
steps = 4
[eval]
mc_samples = 2
tstep_steps = 4
"""
VARIANTS = """
[[compare]]
name = "ell1"
set = ["model.ell=1"]

[[compare]]
name = "joint-loss"
set = ['train.loss="joint"', "train.lr=0.01"]
"""


def write_config(tmp_path, variants: str = VARIANTS, steps: int = 6, name: str = "cmp.toml") -> str:
    path = tmp_path / name
    path.write_text(BASE.replace("STEPS", str(steps)) + variants)
    return str(path)


def report_of(out) -> dict:
    return json.loads((out / "report.json").read_text())


def figures(report: dict, close=lambda x: x) -> list[tuple]:
    """Everything in the table that does not depend on timing. A model's torch threads (cores // jobs) may change
    the last bits of a float reduction, so numbers are compared to 1e-9 relative, everything else exactly."""
    out = []
    for r in report["comparison"]["rows"]:
        b = r.get("bound") or {}
        out.append((r["model"], r["status"], b.get("label"), b.get("relation"),
                    close(b.get("nats_per_token")), r.get("nfe_per_sequence"), close(r.get("scores"))))
    return out


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory):
    """One comparison run with --jobs 2, shared by the tests that only read it."""
    tmp = tmp_path_factory.mktemp("cmp")
    out = tmp / "run"
    assert main(["run", "--config", write_config(tmp), "--out", str(out), "--quiet", "--jobs", "2"]) == 0
    return out


def test_table_rows_kinds_and_folders(two_jobs):
    rows = report_of(two_jobs)["comparison"]["rows"]
    assert [r["model"] for r in rows] == ["main", "ell1", "joint-loss"]
    assert all(r["status"] == "ok" for r in rows)
    main_row, ell1, joint = rows
    assert main_row["main"] and main_row["folder"] == "."
    assert main_row["bound"]["relation"] == "≤" and main_row["bound"]["kind"] == "bound-estimate"
    assert ell1["bound"]["relation"] == "=" and ell1["bound"]["kind"] == "exact"
    # trained on the joint loss, the row still shows a valid bound, never the objective
    assert joint["bound"]["relation"] == "≤" and "joint" not in joint["bound"]["label"]
    for r in rows:
        assert r["nfe_per_sequence"] > 0 and r["sampling_tokens_per_s"] > 0 and r["train_seconds"] > 0
    for name in ("ell1", "joint-loss"):  # each variant is a complete run folder of its own
        folder = two_jobs / "compare" / name
        assert {"checkpoint.safetensors", "metrics.jsonl", "report.json", "report.md",
                ".prime-manifest.json"} <= set(os.listdir(folder))
        assert not (folder / ".prime.lock").exists()
    md = (two_jobs / "report.md").read_text()
    assert "## Comparison" in md and "| ell1 | = " in md and "| main (this run) | ≤ " in md
    assert "`train.loss=\"joint\"`" in md


def test_checkpoints_hold_no_comparison(two_jobs):
    from prime_core import read_checkpoint

    for folder in (two_jobs, two_jobs / "compare" / "ell1"):
        meta = read_checkpoint(str(folder / "checkpoint.safetensors")).meta
        assert "compare" not in meta["config"]


def test_jobs_1_gives_the_same_numbers(two_jobs, tmp_path):
    out = tmp_path / "one"
    assert main(["run", "--config", write_config(tmp_path), "--out", str(out), "--quiet", "--jobs", "1"]) == 0
    assert report_of(out)["comparison"]["jobs"] == 1
    assert figures(report_of(out)) == figures(report_of(two_jobs), lambda x: pytest.approx(x, rel=1e-9))


def test_failed_variant_is_a_row_and_exit_1(tmp_path, capsys):
    out = tmp_path / "run"
    mine = out / "compare" / "ell1"
    mine.mkdir(parents=True)
    (mine / "report.md").write_text("the user's notes\n")  # a file no prime run wrote: that variant refuses
    assert main(["run", "--config", write_config(tmp_path, steps=3), "--out", str(out), "--quiet"]) == 1
    rows = {r["model"]: r for r in report_of(out)["comparison"]["rows"]}
    assert rows["ell1"]["status"] == "failed" and "no prime run recorded" in rows["ell1"]["error"]
    assert rows["main"]["status"] == rows["joint-loss"]["status"] == "ok"
    assert (mine / "report.md").read_text() == "the user's notes\n"
    assert not (mine / "checkpoint.safetensors").exists()
    assert "**failed**" in (out / "report.md").read_text()
    assert "1 of 3 compared models failed (ell1)" in capsys.readouterr().err


def test_no_compare_trains_only_the_main_model(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--config", write_config(tmp_path, steps=3), "--out", str(out), "--quiet",
                 "--no-compare"]) == 0
    assert "comparison" not in report_of(out)
    assert not (out / "compare").exists()


def test_resume_starts_a_new_variant_and_resumes_the_rest(tmp_path):
    out = tmp_path / "run"
    one = '\n[[compare]]\nname = "ell1"\nset = ["model.ell=1"]\n'
    assert main(["run", "--config", write_config(tmp_path, one, steps=3), "--out", str(out), "--quiet"]) == 0
    before = (out / "compare" / "ell1" / "checkpoint.safetensors").read_bytes()
    assert main(["run", "--config", write_config(tmp_path, steps=3), "--out", str(out), "--quiet", "--resume"]) == 0
    assert [r["status"] for r in report_of(out)["comparison"]["rows"]] == ["ok"] * 3
    assert (out / "compare" / "ell1" / "checkpoint.safetensors").read_bytes() == before  # finished: unchanged
    # without --resume or --force a second run refuses each existing checkpoint: main first, so no table
    assert main(["run", "--config", write_config(tmp_path, steps=3), "--out", str(out), "--quiet"]) == 2


def test_ctrl_c_stops_every_child(tmp_path):
    out = tmp_path / "run"
    config = write_config(tmp_path, steps=100000)
    proc = subprocess.Popen([sys.executable, "-m", "prime_core", "run", "--config", config, "--out", str(out),
                             "--quiet", "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "compare" / "ell1" / "metrics.jsonl").exists():  # both children are training
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    # each child was interrupted and settled its folder (lock released; no checkpoint yet, so nothing left)
    for folder in (out, out / "compare" / "ell1"):
        assert not (folder / ".prime.lock").exists()
        assert not (folder / "checkpoint.safetensors").exists()
    assert not (out / "compare" / "joint-loss").exists()  # never started


BAD = [
    ('[[compare]]\nname = "x"\nset = ["model.ell=1"]\ncolour = 1\n', "unknown key(s) colour in [[compare]] entry 1"),
    ('[[compare]]\nname = "x"\nset = ["model.ell"]\n', "must look like section.key=value"),
    ('[[compare]]\nname = "x"\nset = ["model.ell=0"]\n', "[[compare]] 'x': model.ell must be in [1, 64]"),
    ('[[compare]]\nname = "x"\nset = ["model.colour=1"]\n', "unknown key(s) colour in [model]"),
    ('[[compare]]\nname = "x"\nset = ["data.options={}"]\n', "keeps the main model's data and budget"),
    ('[[compare]]\nname = "x"\nset = ["train.steps=9"]\n', "keeps the main model's data and budget"),
    ('[[compare]]\nname = "x"\n[[compare]]\nname = "X"\n', "entries 1 and 2 have the same name 'X'"),
    ('[[compare]]\nname = "../up"\n', "name must be a folder name"),
    ('[[compare]]\nname = ".hidden"\n', "name must be a folder name"),
    ('[[compare]]\nname = "a/b"\n', "name must be a folder name"),
    ('[[compare]]\nset = ["model.ell=1"]\n', "name must be a folder name"),
    ('[[compare]]\nname = "x"\nset = "model.ell=1"\n', "set must be a list"),
    ('[compare]\nname = "x"\n', "[[compare]] must be an array of tables"),
    ('[[compare]]\nname = "x"\nset = [\'model.backbone="nope"\']\n', "[[compare]] 'x': "),
]


@pytest.mark.parametrize("entry, message", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_compare_entries(tmp_path, capsys, entry, message):
    out = tmp_path / "run"
    assert main(["run", "--config", write_config(tmp_path, entry), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prime: error:") and "\n" not in err and message in err, err
    assert not out.exists()


def test_config_round_trip_and_load():
    config = load_config(None, ["model.ell=2"])
    assert config.compare == () and "compare" not in config.to_dict()
    with_variants = Config.from_dict({**config.to_dict(), "compare": [{"name": "b", "set": ["model.ell=1"]}]})
    assert Config.from_dict(json.loads(with_variants.to_json())) == with_variants
    assert with_variants.variant_config(with_variants.compare[0]).model.ell == 1
    with pytest.raises(ConfigError, match="unknown config section"):
        Config.from_dict({"comparisons": []})


def test_headline_bound_never_takes_an_objective():
    objective = {"label": "joint loss", "kind": "objective", "value": 1.0, "is_bound": False}
    bound = {"label": "NELBO", "kind": "bound-estimate", "value": 2.0, "is_bound": True,
             "perplexity_upper_bound": 8.0}
    assert headline_bound({"metrics": [objective]}) is None
    assert headline_bound({"metrics": [objective, bound]})["label"] == "NELBO"
    exact = {"label": "exact NLL", "kind": "exact", "value": 1.5, "is_bound": True, "perplexity": 4.48}
    assert headline_bound({"metrics": [bound, exact]})["relation"] == "="


def test_exact_enumeration_only_within_its_budget(two_jobs, monkeypatch):
    """The report's exact NLL is enumerated for a tiny model and skipped (bounds only) above EXACT_MAX_LOGITS: a
    B = 4, ℓ = 2 block model on C = 4096 took > 25 min of the main job's report."""
    from prime_core.runs import evaluate

    ckpt = str(two_jobs / "compare" / "ell1" / "checkpoint.safetensors")
    assert "exact_nll" in evaluate.evaluate_report(ckpt, max_sequences=8)
    monkeypatch.setattr(evaluate, "EXACT_MAX_LOGITS", 8 * 5 * 6 * 2**5 - 1)  # rows · L · C · 2^units, minus one
    assert "exact_nll" not in evaluate.evaluate_report(ckpt, max_sequences=8)


def test_prime_train_of_a_compared_config_writes_a_loadable_model(tmp_path):
    """`prime train` (not only `prime run`) on a config with [[compare]] writes the model's own config, and a
    checkpoint that still holds a [[compare]] list (written before the fix) loads."""
    from prime_core import load_model
    from prime_core.runs.build import checkpoint_config

    out = tmp_path / "t"
    assert main(["train", "--config", write_config(tmp_path, steps=2), "--out", str(out), "--quiet"]) == 0
    from prime_core.runs.checkpoint import read_checkpoint
    meta = read_checkpoint(str(out / "checkpoint.safetensors")).meta
    assert "compare" not in meta["config"]
    load_model(str(out / "checkpoint.safetensors"))  # loads
    old = {**meta["config"], "compare": [{"name": "ell1", "set": ["model.ell=1"]}]}
    assert checkpoint_config({"config": old}, "old.safetensors").model.ell == 2


def test_the_main_models_warnings_go_to_stderr(capsys):
    """The child's stdout and stderr are read apart; what it wrote to stderr (its warnings) reaches stderr as
    without a comparison (the wheel smoke test greps stderr for the matplotlib hint)."""
    from prime_core.runs.compare import _echo_output, _Job

    job = _Job("main", Config(), "out", main=True)
    script = ("import sys; print('[1/3] training'); "
              "print('warning: loss.png (loss curve) skipped: matplotlib is not installed', file=sys.stderr); "
              "print('report: out/report.md')")
    job.spawn([sys.executable, "-c", script], 1)
    job.proc.wait(60)
    job.join_readers(10)
    _echo_output(job, print)
    out, err = capsys.readouterr()
    assert err.strip() == "warning: loss.png (loss curve) skipped: matplotlib is not installed"
    assert out.strip() == "report: out/report.md"


def test_grow_resizes_a_running_childs_torch_threads():
    """A model still running when the others ended takes over their cores: `_Job.grow` writes the count on the
    child's stdin and signals it; the child's handler (`compare_child._set_threads`) resizes torch's pool."""
    from prime_core.runs.compare import _Job

    job = _Job("ar", Config(), "out")
    script = ("import signal, time, torch\n"
              "from prime_core.runs.compare_child import GROW_SIGNAL, READY, _set_threads\n"
              "signal.signal(GROW_SIGNAL, _set_threads)\n"
              "print('threads', torch.get_num_threads(), flush=True)\n"
              "print(READY, flush=True)\n"
              "end = time.time() + 60\n"
              "while torch.get_num_threads() != 3 and time.time() < end:\n"
              "    time.sleep(0.02)\n"
              "print('threads', torch.get_num_threads(), flush=True)\n")
    job.spawn([sys.executable, "-c", script], 1)
    deadline = time.monotonic() + 60
    while not job.is_ready and time.monotonic() < deadline:
        time.sleep(0.02)
    job.proc.stdin.write("2\n")  # a count whose signal merged with the next one: the last count wins
    job.proc.stdin.flush()
    assert job.grow(3) and job.threads == 3
    assert not job.grow(2)  # never fewer
    job.proc.wait(60)
    job.join_readers(10)
    assert [line for _, line in job.lines] == ["threads 1", "threads 3"]
    assert not job.grow(4)  # it has ended


def test_child_ignores_the_grow_signal_once_its_run_is_over(monkeypatch, tmp_path):
    """A grow signal that reaches a child after its run (while Python shuts down, when a Python handler would be
    back to the default action: the end of the process) is ignored, so a finished model is never reported failed."""
    import io

    from prime_core.runs import compare_child, pipeline

    monkeypatch.setattr(pipeline, "run_pipeline", lambda *args, **kwargs: None)
    monkeypatch.setattr(sys, "stdin", io.StringIO(Config().to_json() + "\n"))
    before = signal.getsignal(signal.SIGUSR1)
    try:
        assert compare_child.main(["--out", str(tmp_path / "run")]) == 0
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, before)
