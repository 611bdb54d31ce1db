"""Issue 24 items 8, 9 (run/train), 10a, 11 and issue 23 item 7 (trainer/sample): run folders keep the user's
files, runs fail before their work and leave nothing they created, sizes are checked before allocation, and the
smaller flags are refused instead of ignored. Each case: exit 2, one line on stderr, nothing written (or the
documented notice). Rows in docs/reliability.md ("Runs: run folders, stage checks, sizes, flags").

Runs are in-process (`prime_core.cli.app.main`) on a 3-token toy model, so each takes about a second.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time

import pytest
import torch
from torch import nn

import prime_core.builtin.trainer as simple_trainer
import prime_core.runs.evaluate as evaluate_mod
from prime_core import (Backbone, CheckpointError, Config, DataConfig, ModelConfig, build_model, hookimpl, load_model, read_checkpoint, save_model)
from prime_core.runs.checkpoint import save_checkpoint
from prime_core.cli.app import main
from prime_core.plugin.default import get_registry
from prime_core.runs.rundir import (MANIFEST_NAME, REPORT_ARTIFACTS, RUN_ARTIFACTS, check_writable, read_manifest,
                               start_over)
from prime_core.sampling.semiar import MAX_BLOCKS, window_plan

TINY = ["--set", "data.dataset=toy-markov", "--set", "data.options={num_classes = 6, length = 3, num_eval = 64}",
        "--set", "model.width=8", "--set", "model.backbone_options={hidden = 32, depth = 1}",
        "--set", "train.batch_size=32", "--set", "train.log_every=1", "--set", "eval.mc_samples=1",
        "--set", "eval.tstep_steps=4", "--set", "sample.num_samples=4", "--set", "sample.steps=4",
        "--set", "train.warmup=0"]


def steps(n: int) -> list[str]:
    return ["--set", f"train.steps={n}", "--set", f"train.checkpoint_every={n}"]


def train(out, *extra: str) -> int:
    return main(["train", "--out", str(out), "--quiet", *TINY, *extra])


def run(out, *extra: str) -> int:
    return main(["run", "--out", str(out), "--quiet", *TINY, *extra])


def one_line_error(capsys, fragment: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("prime: error:") and "\n" not in err and fragment in err, err
    return err


def tree(folder) -> dict[str, str]:
    """relative path → sha256 of every file under ``folder``: "changes nothing" is checked on these."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-step run folder (checkpoint, metrics, manifest)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert train(out, *steps(2)) == 0
    return out


def user_folder(folder, names) -> None:
    """The user's own files at prime's names (and a tensorboard/ folder with an event file of their own)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name == "tensorboard":
            (folder / "tensorboard").mkdir()
            (folder / "tensorboard" / "events.out.tfevents.1.mine").write_bytes(b"the user's own events")
        else:
            (folder / name).write_text(f"the user's own {name}")


# ------------------------------------------------------------------------------------------------ 24.8 --force
@pytest.mark.parametrize("name", RUN_ARTIFACTS[:4])
def test_force_never_deletes_a_training_file_no_run_recorded(tmp_path, capsys, name):
    """`prime train --force` in a folder that never held a prime run: a user file at any name the run writes is
    refused (prime would overwrite it), with --force and without; every file stays byte for byte."""
    out = tmp_path / "mine"
    user_folder(out, [name, "notes.txt"])
    before = tree(out)
    for extra in (["--force"], []):
        assert train(out, *steps(2), *extra) == 2
        one_line_error(capsys, f"holds {name}, which no prime run recorded as its own")
        assert tree(out) == before


@pytest.mark.parametrize("name", [*REPORT_ARTIFACTS, "tensorboard"])
def test_force_keeps_the_users_report_files_and_tensorboard_folder(tmp_path, capsys, name):
    """Names prime train does not write stay untouched by `prime train --force`; `prime run --force` refuses
    report.md/report.json/samples.png of the user before training; a tensorboard/ folder of the user gets the
    run's event files beside its own, and a later --force removes only the run's."""
    out = tmp_path / "mine"
    user_folder(out, [name])
    before = tree(out)
    assert train(out, *steps(2), "--force") == 0
    capsys.readouterr()
    assert {k: v for k, v in tree(out).items() if k in before} == before
    if name == "tensorboard":
        return
    (out / "checkpoint.safetensors").unlink()  # even a folder that did hold a run: the report is not its own
    assert run(out, *steps(2), "--force") == 2
    one_line_error(capsys, f"holds {name}, which no prime run recorded as its own")
    assert (out / name).read_text() == f"the user's own {name}"


def test_users_tensorboard_events_survive_force(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    out = tmp_path / "mine"
    user_folder(out, ["tensorboard"])
    assert train(out, *steps(2), "--set", "train.tensorboard=true") == 0
    files, folders = read_manifest(str(out))
    ours = {f for f in files if f.startswith("tensorboard/")}
    assert ours and "tensorboard/events.out.tfevents.1.mine" not in files and folders == set()
    assert train(out, *steps(2), "--force") == 0
    assert os.listdir(out / "tensorboard") == ["events.out.tfevents.1.mine"]


def test_force_removes_what_a_prime_run_wrote_and_nothing_else(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(out, *steps(2)) == 0
    files, _ = read_manifest(str(out))
    assert {"checkpoint.safetensors", "metrics.jsonl", "report.md", "report.json"} <= files
    (out / "notes.txt").write_text("mine")
    assert train(out, *steps(2), "--force") == 0
    assert not (out / "report.md").exists() and not (out / "report.json").exists()
    assert (out / "notes.txt").read_text() == "mine"


def test_a_hand_edited_manifest_cannot_make_prime_delete_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path.parent / "outside.txt").write_text("mine")
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(
        {"format": 1, "files": ["notes.txt", "../outside.txt", "tensorboard/../notes.txt", "/etc/hostname"],
         "folders": [".", ".."]}))
    assert start_over(str(tmp_path)) == []
    assert (tmp_path / "notes.txt").exists() and (tmp_path.parent / "outside.txt").exists()


def test_a_folder_from_before_manifests_can_still_be_resumed(tmp_path, capsys):
    out = tmp_path / "old"
    assert train(out, *steps(2)) == 0
    (out / MANIFEST_NAME).unlink()  # as written by a prime version without manifests
    assert train(out, *steps(3), "--resume") == 0
    assert read_checkpoint(str(out / "checkpoint.safetensors")).meta["train_state"]["step"] == 3
    assert "checkpoint.safetensors" in read_manifest(str(out))[0]


# ------------------------------------------------------------------------------------------------ 24.9 fail early
@pytest.mark.parametrize("override, message", [
    ('sample.sampler="nosuch"', "unknown sampler 'nosuch'"),
    ("sample.options={bogus = 1}", "bad options for sampler 'ancestral'"),
])
def test_prime_run_checks_the_sampling_stage_before_training(tmp_path, capsys, override, message):
    out = tmp_path / "run"
    t0 = time.perf_counter()
    assert run(out, *steps(50), "--set", override) == 2
    one_line_error(capsys, message)
    assert not out.exists() and time.perf_counter() - t0 < 30


def test_prime_run_checks_prompt_lengths_before_training(tmp_path, capsys):
    pytest.importorskip("prime_plugin_text")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"the quick brown fox {i} jumps over the lazy dog" for i in range(50)))
    opts = (f'data.options={{ source = "{corpus}", tokenizer = "bytes", length = 8, '
            f'cache_dir = "{tmp_path / "cache"}" }}')
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--quiet", "--set", 'data.dataset="text"', "--set", opts,
                 "--set", 'model.backbone="dit-tiny"', "--set", "model.width=16", *steps(50),
                 "--set", 'sample.prompts=["a prompt far longer than eight tokens"]']) == 2
    one_line_error(capsys, "longer than the 8 tokens generated")
    assert not out.exists()


@pytest.mark.parametrize("error", [MemoryError, RuntimeError])
def test_a_run_failing_at_step_1_leaves_nothing_it_created(tmp_path, capsys, monkeypatch, error):
    def fail(*args, **kwargs):
        raise error("simulated failure at step 1")

    monkeypatch.setattr(simple_trainer, "batch_indices", fail)
    assert train(tmp_path / "new" / "run", *steps(2)) in (1, 2)
    capsys.readouterr()
    assert not (tmp_path / "new").exists()  # the folders it created, and the empty metrics.jsonl, are gone
    mine = tmp_path / "mine"
    user_folder(mine, ["notes.txt"])
    assert run(mine, *steps(2)) in (1, 2)
    capsys.readouterr()
    assert sorted(os.listdir(mine)) == ["notes.txt"]  # the user's folder stays, with only the user's file


def test_a_run_that_checkpointed_keeps_its_folder_to_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert train(out, *steps(2)) == 0
    monkeypatch.setattr(simple_trainer, "batch_indices", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    assert train(out, *steps(4), "--resume") == 2
    one_line_error(capsys, "not enough memory")
    assert {"checkpoint.safetensors", "metrics.jsonl"} <= set(os.listdir(out))


@pytest.mark.parametrize("out", ["/proc/prime-no/run", "{file}/sub"])
@pytest.mark.parametrize("command", ["train", "run", "sample"])
def test_an_unwritable_out_is_one_line_before_the_work(tmp_path, capsys, trained, command, out):
    (tmp_path / "file").write_text("x")
    out = out.format(file=tmp_path / "file")
    argv = ([command, str(trained / "checkpoint.safetensors"), "-n", "1", "--out", out] if command == "sample"
            else [command, "--out", out, "--quiet", *TINY, *steps(2)])
    assert main(argv) == 2
    one_line_error(capsys, f"--out {out} cannot be")
    assert (tmp_path / "file").read_text() == "x"


def test_check_writable_leaves_nothing(tmp_path):
    check_writable(str(tmp_path / "a" / "b"))
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------------ 24.10a sizes
class _Wide(Backbone):
    """A backbone with a D × 3D weight: on the meta device a huge D overflows torch's size computation."""

    def __init__(self, spec):
        super().__init__(spec)
        self.embed = nn.Embedding(spec.base + 1, spec.width // spec.ell)
        self.qkv = nn.Linear(spec.width, 3 * spec.width)
        self.out = nn.Linear(spec.width, spec.out_dim)

    def forward(self, y, t=None, positions=None):
        h = self.embed(y).flatten(-2)
        return self.select_positions(self.out(self.qkv(h)[..., :h.shape[-1]]), positions)


class _WidePlugin:
    @hookimpl
    def register_backbones(self, register):
        register("wide-test", _Wide)


def test_metadata_width_that_overflows_is_refused_without_a_real_build(tmp_path, registered):
    reg = registered(_WidePlugin(), name="wide")
    config = Config(data=DataConfig(dataset="toy-markov", options={"num_classes": 6, "length": 3}),
                    model=ModelConfig(num_classes=6, length=3, ell=2, width=8, backbone="wide-test"))
    url = save_model(str(tmp_path / "c.safetensors"), build_model(config, reg), config, registry=reg)
    ck = read_checkpoint(url)
    meta = {k: v for k, v in ck.meta.items() if k not in ("format", "format_version")}
    meta["config"]["model"]["width"] = 10**9
    save_checkpoint(url, dict(ck.tensors), meta)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        load_model(url, reg)
    assert "too large to build (model.width=1000000000" in str(err.value) and "\n" not in str(err.value)
    assert time.perf_counter() - t0 < 10  # no 12-GB real allocation was attempted


@pytest.mark.parametrize("options, fragment", [
    ("{size = 1000000000}", "toy-2d with data.options.size=1000000000"),
    ("{size = 1e9}", "data.options.size must be a whole number ≥ 2, got 1000000000.0"),
    ("{num_classes = 3000000}", "toy-markov with data.options.num_classes=3000000"),
])
def test_data_sizes_are_checked_against_memory(tmp_path, capsys, options, fragment):
    dataset = "toy-markov" if "num_classes" in options else "toy-2d"
    t0 = time.perf_counter()
    assert main(["train", "--out", str(tmp_path / "r"), "--quiet", "--set", f"data.dataset={dataset}",
                 "--set", f"data.options={options}"]) == 2
    one_line_error(capsys, fragment)
    assert not (tmp_path / "r").exists() and time.perf_counter() - t0 < 30


# ------------------------------------------------------------------------------------------------ 24.11 flags
def test_plugins_hook_must_be_a_hook(capsys):
    assert main(["plugins", "--hook", "nosuch"]) == 2
    err = one_line_error(capsys, "--hook 'nosuch' is not a prime hook; hooks: register_maps, ")
    assert "register_samplers" in err and "register_commands" in err
    assert main(["plugins", "--all", "--hook", "register_samplers", "--json"]) == 0
    assert all("register_samplers" in r["hooks"] for r in json.loads(capsys.readouterr().out))


@pytest.mark.parametrize("command", ["train", "run"])
def test_resume_with_force_is_refused(tmp_path, capsys, command):
    assert main([command, "--out", str(tmp_path / "r"), "--resume", "--force", *TINY]) == 2
    one_line_error(capsys, "--resume continues the folder's run and --force starts it over: pass one of them")
    assert not (tmp_path / "r").exists()


def test_resume_below_the_checkpoint_step_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert train(out, *steps(4)) == 0
    before = tree(out)
    assert train(out, *steps(2), "--resume") == 2
    one_line_error(capsys, "its checkpoint is at step 4, past train.steps=2; set train.steps above 4")
    assert tree(out) == before
    assert train(out, *steps(4), "--resume") == 0  # a finished run resumed: nothing to train, documented no-op


@pytest.mark.parametrize("flags, fragment", [
    (["--stride", "1"], "--stride sets the blocks of --length N > L = 3"),
    (["--length", "3", "--context", "1"], "--context sets the blocks of --length N > L = 3"),
    (["--runtime", "onnxruntime", "--device", "cpu"], "--device cpu places the eager model (--runtime torch)"),
    (["--data-option", "bogus=1"], "--data-option bogus=…"),
    (["--length", str(2**20), "--steps", "1"], f"needs {2**20 - 2} blocks of L = 3 tokens (stride 1), more than "
                                                f"{MAX_BLOCKS}"),
])
def test_sample_flags_that_would_be_ignored_are_refused(trained, capsys, flags, fragment):
    t0 = time.perf_counter()
    assert main(["sample", str(trained / "checkpoint.safetensors"), "-n", "1", *flags]) == 2
    one_line_error(capsys, fragment)
    assert time.perf_counter() - t0 < 30


def test_long_sequences_say_how_many_blocks_up_front(trained, capsys):
    assert main(["sample", str(trained / "checkpoint.safetensors"), "-n", "1", "--steps", "1", "--length", "9",
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert "prime: note: 9 tokens = 7 blocks of L = 3 tokens, each a sampler run of 1 steps" in captured.err
    assert len(json.loads(captured.out)["tokens"][0]) == 9
    assert len(window_plan(MAX_BLOCKS + 2, 3, 1)) == MAX_BLOCKS


def test_many_monte_carlo_draws_show_progress_on_a_terminal(trained, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(evaluate_mod, "PROGRESS_DELAY_S", 0.0)
    model, _, _ = load_model(str(trained / "checkpoint.safetensors"))
    metric = get_registry().build("metric", "nelbo")
    evaluate_mod.evaluate_metric(metric, model, torch.zeros(4, 3, dtype=torch.long), mc_samples=5)
    assert "nelbo: Monte-Carlo draws" in err.getvalue() and "/5 [" in err.getvalue()


# ------------------------------------------------------------------------------------------------ 23.7
@pytest.mark.parametrize("override, fragment", [
    ('train.options={schedual = "cosine"}', "train.options.schedual is not an option of the simple trainer; "
                                            "its options are schedule, device"),
    ('train.options={schedule = "bogus"}', "train.options.schedule must be one of constant, cosine, got 'bogus'"),
    ('train.options={device = "tpu"}', "train.options.device must be"),
])
def test_simple_trainer_refuses_unknown_train_options(tmp_path, capsys, override, fragment):
    assert train(tmp_path / "r", *steps(2), "--set", override) == 2
    one_line_error(capsys, fragment)
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def text_ckpt(tmp_path_factory):
    pytest.importorskip("prime_plugin_text")
    root = tmp_path_factory.mktemp("text")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(f"the quick brown fox {i} jumps over the lazy dog" for i in range(50)))
    opts = (f'data.options={{ source = "{corpus}", tokenizer = "bytes", length = 16, '
            f'cache_dir = "{root / "cache"}" }}')
    assert main(["train", "--out", str(root / "run"), "--quiet", "--set", 'data.dataset="text"', "--set", opts,
                 "--set", 'model.backbone="dit-tiny"', "--set", "model.width=16", "--set", "train.batch_size=4",
                 *steps(2)]) == 0
    return str(root / "run" / "checkpoint.safetensors")


@pytest.mark.parametrize("flags, fragment", [
    (["--infill", "a\udcff [MASK:3] b"], "--infill 'a\\udcff [MASK:3] b' is not valid UTF-8 text (byte 0xff"),
    (["--prompt", "caf\udce9"], "--prompt 'caf\\udce9' is not valid UTF-8 text (byte 0xe9 at character 3)"),
    (["--prompts", "{latin1}"], "not UTF-8 text"),
    (["--infill", "a [MASK:30] b"], "tokens, longer than the 16 tokens generated"),
    (["--infill", "a [MASK:30] b", "--length", "20"], "longer than the 20 tokens generated"),
])
def test_text_inputs_that_cannot_be_sampled_exit_2(text_ckpt, tmp_path, capsys, flags, fragment):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\n".encode("latin-1"))
    out = tmp_path / "o"
    flags = [f.format(latin1=latin1) for f in flags]
    assert main(["sample", text_ckpt, "--steps", "2", "--out", str(out), *flags]) == 2
    one_line_error(capsys, fragment)
    assert not out.exists()


def test_force_never_removes_through_a_linked_folder(tmp_path):
    """A manifest listing an event file under ``tensorboard`` removes nothing when ``tensorboard`` is a link to
    another folder (the file there is not the run's)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "events.out.tfevents.1").write_text("not the run's")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "tensorboard").symlink_to(elsewhere)
    (run_dir / MANIFEST_NAME).write_text(json.dumps({"format": 1, "files": ["tensorboard/events.out.tfevents.1"],
                                                     "folders": ["tensorboard"]}))
    assert start_over(str(run_dir)) == []
    assert (elsewhere / "events.out.tfevents.1").exists() and (run_dir / "tensorboard").is_symlink()
