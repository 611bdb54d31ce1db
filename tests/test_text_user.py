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

from prime_core.cli import main

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
