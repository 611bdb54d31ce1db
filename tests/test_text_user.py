"""What a text user meets (issue 23 items 1, 5 and the smaller oddities): lm-eval's own CLI finds the model
"prime" and every output says its likelihoods are bounds; `prime data prepare`'s default split works on a small
folder; several `--data` files get a combined, token-weighted bound row; the sample summary's wording; the
prepared-corpus mismatch names both tokenizers; the ONNX Runtime notice; the checkpoint line on rank 0 only."""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from prime_core.cli.app import main

WORDS = "the quick brown fox jumps over a lazy dog while Emma and Harriet walk to Highbury".split()


def _corpus(path, lines=200):
    path.write_text("\n".join(" ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(10)) for i in range(lines)),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def text_ckpt(tmp_path_factory):
    """A 3-step BPE text checkpoint (C = 300, L = 16, ℓ = 2) and its corpus."""
    root = tmp_path_factory.mktemp("textuser")
    corpus = _corpus(root / "corpus.txt")
    opts = (f'data.options={{ source = "{corpus}", tokenizer = "bpe", tokenizer_options = {{ vocab_size = 300 }}, '
            f'length = 16, cache_dir = "{root / "cache"}" }}')
    assert main(["train", "--out", str(root / "run"), "--quiet", "--set", 'data.dataset="text"', "--set", opts,
                 "--set", 'model.backbone="dit-tiny"', "--set", "model.width=16", "--set", "model.ell=2",
                 "--set", "train.steps=3", "--set", "train.batch_size=4", "--set", "train.warmup=0",
                 "--set", "sample.steps=4"]) == 0
    return root, str(root / "run" / "checkpoint.safetensors")


# ------------------------------------------------------------------------------------------------ lm-eval's CLI
LM_TASKS = {
    "tu_mc": 'output_type: multiple_choice\ndoc_to_text: "{{context}}"\ndoc_to_target: label\n'
             "doc_to_choice: choices\nmetric_list:\n  - metric: acc\n",
    "tu_rolling": 'output_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: "{{context}}"\n'
                  "metric_list:\n  - metric: word_perplexity\n  - metric: bits_per_byte\n",
}


def _lm_tasks(root):
    data = root / "lm.jsonl"
    docs = [{"context": "the quick brown", "choices": [" fox", " dog"], "label": 0},
            {"context": "Emma and Harriet walk to", "choices": [" Highbury", " the lazy dog"], "label": 0}]
    data.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    tasks = root / "lm_tasks"
    tasks.mkdir(exist_ok=True)
    for name, body in LM_TASKS.items():
        (tasks / f"{name}.yaml").write_text(f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                            f"    test: {data}\ntest_split: test\n{body}", encoding="utf-8")
    return tasks


def _lm_eval_cli():
    pytest.importorskip("lm_eval", reason="pip install 'prime-plugin-text[lmeval]'")
    exe = shutil.which("lm_eval", path=os.path.dirname(sys.executable)) or shutil.which("lm_eval")
    return [exe] if exe else [sys.executable, "-m", "lm_eval"]


def _offline_env(tmp_path, **extra):
    return dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path / "hf"),
                TOKENIZERS_PARALLELISM="false", **extra)


def test_lm_eval_cli_finds_prime_and_says_its_numbers_are_bounds(text_ckpt, tmp_path):
    """The harness's own CLI (a subprocess, offline, local YAML tasks): exit 0, the table is followed by the
    legend, and the results JSON carries config.likelihoods.kind = "bound"; per-sample resps are −B < 0."""
    cli = _lm_eval_cli()
    root, ckpt = text_ckpt
    out = tmp_path / "results"
    proc = subprocess.run([*cli, "--model", "prime", "--model_args", f"checkpoint={ckpt},mc=2,steps=4",
                           "--tasks", ",".join(LM_TASKS), "--include_path", str(_lm_tasks(root)),
                           "--output_path", str(out), "--log_samples"],
                          capture_output=True, text=True, env=_offline_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "word_perplexity" in proc.stdout and "acc" in proc.stdout  # lm-eval's table
    assert "every log-likelihood lm-eval used is a bound" in proc.stderr
    assert "accuracy by bound" in proc.stderr and "upper bounds (PPL ≤)" in proc.stderr
    import torch

    if not torch.cuda.is_available():  # lm-eval's CLI asks for cuda:0 by default; prime falls back, saying so
        assert "CUDA is not available here: running on cpu" in proc.stderr
    (results,) = glob.glob(str(out / "**" / "results_*.json"), recursive=True)
    report = json.loads(open(results, encoding="utf-8").read())
    assert report["config"]["likelihoods"]["kind"] == "bound"
    assert "upper bounds" in report["config"]["likelihoods"]["perplexity"]
    assert report["results"]["tu_rolling"]["word_perplexity,none"] > 1.0
    (samples,) = glob.glob(str(out / "**" / "samples_tu_mc_*.jsonl"), recursive=True)
    rows = [json.loads(line) for line in open(samples, encoding="utf-8")]
    assert rows and all(float(r[0][0]) < 0 and str(r[0][1]) == "False" for s in rows for r in s["resps"])


def test_lm_eval_hook_can_be_turned_off(tmp_path):
    """PRIME_LMEVAL_HOOK=0: lm-eval's registry has no "prime" (the hook is the only thing that adds it)."""
    pytest.importorskip("lm_eval")
    code = "from lm_eval.api.registry import model_registry as r; print('prime' in r)"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_offline_env(tmp_path))
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_offline_env(tmp_path, PRIME_LMEVAL_HOOK="0"))
    assert (on.stdout.strip(), off.stdout.strip()) == ("True", "False"), on.stderr + off.stderr


def test_lm_eval_hook_registers_lazily_without_importing_torch(tmp_path):
    """The .pth runs at every interpreter start, so the hook itself must stay cheap: importing lm-eval's registry
    registers a placeholder string, and neither torch nor prime_plugin_text is imported until it is looked up."""
    pytest.importorskip("lm_eval")
    code = ("import sys; from lm_eval.api.registry import model_registry as r; "
            "print(r._objs['prime'], 'torch' in sys.modules, 'prime_plugin_text' in sys.modules)")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_offline_env(tmp_path))
    assert got.stdout.split() == ["prime_plugin_text.lmeval:PrimeLM", "False", "False"], got.stderr


# ------------------------------------------------------------------------------------------------ prime data prepare
def _folder(root, n):
    src = root / f"docs{n}"
    src.mkdir()
    for i in range(n):
        (src / f"d{i:02d}.txt").write_text(f"letters from Donwell, number {i}. " * 5, encoding="utf-8")
    return src


@pytest.mark.parametrize("n, splits", [(29, ["train", "valid", "test"]), (3, ["train", "valid", "test"]),
                                       (2, ["train", "valid"]), (1, ["train"])])
def test_prepare_default_split_works_on_a_small_folder(tmp_path, capsys, n, splits):
    """The default split (train 98 %, valid 1 %, test 1 % by document) on a small folder: the cuts move so that
    each held-out split gets a document (≥ 3 documents: train/valid/test, 2: train/valid, 1: train), every
    document still goes to the first split whose cut exceeds its u, and the sidecar records the cuts used."""
    from prime_plugin_text.prepare import split_of
    from prime_plugin_text.prepared import PreparedCorpus

    src, out = _folder(tmp_path, n), tmp_path / "out"
    assert main(["data", "prepare", str(src), "--out", str(out), "--quiet"]) == 0
    meta = PreparedCorpus(str(out)).meta
    counts = {s: c["documents"] for s, c in meta["splits"].items()}
    assert list(counts) == splits and all(counts.values()) and sum(counts.values()) == n
    rule = meta["split_rule"]
    assert rule["default"] and rule["requested"] == {"train": 0.98, "valid": 0.01, "test": 0.01}
    cuts = list(rule["cuts"].items())
    texts = [p.read_text(encoding="utf-8") for p in sorted(src.iterdir())]
    assert {s: sum(split_of(t, cuts) == s for t in texts) for s in splits} == counts
    if rule["cuts_moved"]:
        assert "cuts moved" in capsys.readouterr().err


def test_prepare_default_split_leaves_a_large_corpus_alone(tmp_path):
    """Where the hash rule already fills every split, the default is the plain rule (no second pass)."""
    from prime_plugin_text.prepare import PrepareRequest, prepare

    src = tmp_path / "big.txt"
    src.write_text("\n".join(f"line {i} of the letters" for i in range(2000)), encoding="utf-8")
    meta = prepare(PrepareRequest([str(src)], str(tmp_path / "out"), text_unit="line", progress=False))
    assert not meta["split_rule"]["cuts_moved"] and meta["split_rule"]["cuts"]["valid"] == pytest.approx(0.99)
    assert meta["split_rule"]["fractions"] == {"train": 0.98, "valid": 0.01, "test": 0.01}


def test_guaranteed_cuts_rule():
    from prime_plugin_text.prepare import cumulative, guaranteed_cuts

    cuts = cumulative({"train": 0.98, "valid": 0.01, "test": 0.01})
    assert guaranteed_cuts(cuts, [0.1, 0.5, 0.7]) == [("train", 0.5), ("valid", 0.7), ("test", 1.0)]
    assert guaranteed_cuts(cuts, [0.1, 0.5, 0.985]) == [("train", 0.5), ("valid", 0.985), ("test", 1.0)]
    assert guaranteed_cuts(cuts, [0.1, 0.981, 0.995]) == [("train", 0.98), ("valid", 0.99), ("test", 1.0)]
    assert guaranteed_cuts(cuts, [0.2, 0.2, 0.4]) == [("train", 0.4), ("valid", 1.0)]  # 2 distinct documents
    assert guaranteed_cuts(cuts, [0.3]) == [("train", 1.0)]


# ------------------------------------------------------------------------------------------------ prime eval --data
def test_eval_several_files_adds_a_token_weighted_combined_bound_row(text_ckpt, capsys):
    root, ckpt = text_ckpt
    a, b = _corpus(root / "a.txt", 20), _corpus(root / "b.txt", 45)
    assert main(["eval", ckpt, "--data", str(a), str(b), "--mc", "2", "--steps", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows, comb = report["files"], report["combined"]
    n = sum(r["tokens"] for r in rows)
    assert comb["tokens"] == n and comb["weighting"] == "token-weighted"
    for k, bound in enumerate(comb["bounds"]):
        total = sum(r["tokens"] * r["bounds"][k]["value"] for r in rows)
        assert bound["value"] == pytest.approx(total / n)
        se = math.sqrt(sum((r["tokens"] * r["bounds"][k]["stderr"]) ** 2 for r in rows)) / n
        assert bound["stderr"] == pytest.approx(se) and bound["kind"] == rows[0]["bounds"][k]["kind"]
        # a Monte-Carlo estimate's "≤" figure is its 95 % upper confidence limit (docs/concepts.md)
        figure = total / n + 1.645 * se if bound["kind"] == "bound-estimate" else total / n
        assert bound["perplexity_upper_bound"] == pytest.approx(math.exp(figure))
        nbytes = sum(r["tokens"] * r["bytes_per_token"] for r in rows)
        assert bound["bits_per_byte_upper_bound"] == pytest.approx(figure * n / (math.log(2) * nbytes))
        assert min(r["bounds"][k]["value"] for r in rows) <= bound["value"] <= max(r["bounds"][k]["value"]
                                                                                   for r in rows)
    assert main(["eval", ckpt, "--data", str(a), str(b), "--mc", "1", "--steps", "4"]) == 0
    text = capsys.readouterr().out
    assert "all 2 files, token-weighted" in text and "a sum of bounds is a bound" in text
    assert main(["eval", ckpt, "--data", str(a), "--mc", "1", "--steps", "4", "--json", "--batch-size", "1"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert "combined" not in one and one["files"][0]["tokens"] == rows[0]["tokens"]  # one file: its row is all


# ------------------------------------------------------------------------------------------------ prime sample
def test_sample_summary_in_continuous_time_has_no_zero_steps(text_ckpt, capsys):
    _, ckpt = text_ckpt
    assert main(["sample", ckpt, "-n", "2", "--sampler", "first-hitting", "--quiet"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "samples of" in x][0]
    assert "× 0 steps" not in line and "block(s)" not in line
    assert line.startswith("2 samples of 16 tokens, 1 block in continuous time (no step grid): NFE ")
    assert main(["sample", ckpt, "-n", "1", "--steps", "4", "--quiet"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "samples of" in x or "sample of" in x][0]
    assert line.startswith("1 sample of 16 tokens, 1 block × 4 steps: NFE ") and "idle steps" in line


def test_onnxruntime_without_step_model_says_it_exports_first(text_ckpt, capsys, monkeypatch):
    """The notice comes before the (slow) export; the export itself is stubbed to keep this test fast."""
    pytest.importorskip("onnxruntime")
    from prime_core import PrimeError

    def export_step(*args, **kwargs):
        raise PrimeError("stub: export not run in this test")

    monkeypatch.setattr("export.graph.export_step", export_step)
    _, ckpt = text_ckpt
    assert main(["sample", ckpt, "-n", "1", "--steps", "2", "--runtime", "onnxruntime", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "exporting this checkpoint's sampling step to ONNX first" in err[0] and "--step-model" in err[0]
    assert "stub: export not run" in err[-1]


# ------------------------------------------------------------------------------------------------ prime train
def test_checkpoint_line_is_printed_by_rank_0_only(tmp_path, capsys, monkeypatch):
    """Under torchrun every process returns from `prime train`; only RANK 0 prints "checkpoint: …"."""
    import prime_core.cli.train as cli

    class Trainer:
        def fit(self, config, out_dir, **_):
            return os.path.join(out_dir, "checkpoint.safetensors")

    class Registry:
        def build(self, kind, name, **_):
            return Trainer()

    monkeypatch.setattr(cli, "registry", lambda: Registry())  # the train group's lookup
    monkeypatch.setattr("prime_core.runs.report.finish_training", lambda out: None)
    for rank, printed in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        assert main(["train", "--out", str(tmp_path / f"r{rank}"), "--quiet", "--set", "train.steps=1"]) == 0
        assert ("checkpoint:" in capsys.readouterr().out) is printed


def test_prepare_default_split_retrains_bpe_on_the_moved_train_split(tmp_path):
    """A learning tokenizer is trained on the train split of the cuts actually used (a second pass after the
    cuts move), so no held-out document shapes the vocabulary."""
    from prime_plugin_text.prepare import PrepareRequest, prepare, split_of

    src = _folder(tmp_path, 5)
    meta = prepare(PrepareRequest([str(src)], str(tmp_path / "out"), tokenizer="bpe",
                                  tokenizer_options={"vocab_size": 300}, progress=False))
    cuts = list(meta["split_rule"]["cuts"].items())
    assert meta["split_rule"]["cuts_moved"] and [s for s, _ in cuts] == ["train", "valid", "test"]
    texts = [p.read_text(encoding="utf-8") for p in sorted(src.iterdir())]
    train = [t for t in texts if split_of(t, cuts) == "train"]
    from prime_plugin_text.tokenizer import BPETokenizer

    assert meta["tokenizer"] == BPETokenizer(300).trained(iter(train)).to_json()


def test_lm_eval_hook_keeps_lm_evals_own_models(tmp_path):
    """lm-eval fills its own lazy model table only when its registry is empty at the first lookup; the hook must
    not make it skip that: with "prime" registered, lm-eval's models ("hf", "dummy", …) are still found."""
    pytest.importorskip("lm_eval")
    code = ("from lm_eval.api.registry import get_model, model_registry as r; "
            "print('prime' in r, 'hf' in r, get_model('dummy').__name__)")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_offline_env(tmp_path))
    assert got.stdout.split() == ["True", "True", "DummyLM"], got.stderr
