"""A tiny `prime run` on a small text file (seconds): train → sample → eval → report, and the AR baseline."""

import json
import os

from prime_core.cli.app import main
from prime_core import read_checkpoint


def _args(corpus, cache, out, *extra):
    opts = (f'data.options={{ source = "{corpus}", tokenizer = "bpe", tokenizer_options = {{ vocab_size = 300 }}, '
            f'length = 16, cache_dir = "{cache}" }}')
    return ["run", "--out", str(out), "--quiet", "--set", 'data.dataset="text"', "--set", opts,
            "--set", 'model.backbone="dit-tiny"', "--set", "model.width=16", "--set", "model.ell=2",
            "--set", "train.steps=3", "--set", "train.batch_size=4", "--set", "train.warmup=0",
            "--set", "sample.steps=4", "--set", "sample.num_samples=2", "--set", "eval.max_sequences=8",
            "--set", "eval.mc_samples=1", "--set", "eval.tstep_steps=4", *extra]


def test_prime_run_on_text(corpus, cache, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(corpus, cache, out)) == 0
    printed = capsys.readouterr().out
    assert "PPL ≤" in printed and "BPB ≤" in printed and "sample:" in printed
    assert os.path.isfile(out / "report.md") and os.path.isfile(out / "loss.png")
    report = json.loads((out / "report.json").read_text())
    assert all(isinstance(s, str) for s in report["samples"])
    meta = read_checkpoint(str(out / "checkpoint.safetensors")).meta
    assert meta["data"]["tokenizer"]["name"] == "bpe"  # the tokenizer travels with the checkpoint
    assert main(["eval", str(out / "checkpoint.safetensors"), "--mc", "1", "--max-sequences", "4",
                 "--data-option", f"source={corpus}", "--data-option", f"cache_dir={cache}"]) == 0  # never stored
    assert "BPB ≤" in capsys.readouterr().out
    assert "bits/byte" in (out / "report.md").read_text()
    # `prime sample` decodes with the checkpoint's own tokenizer (no corpus needed)
    assert main(["sample", str(out / "checkpoint.safetensors"), "-n", "2", "--steps", "4", "--quiet", "--json"]) == 0
    sampled = json.loads(capsys.readouterr().out)
    assert len(sampled["decoded"]) == 2 and all(isinstance(t, str) for t in sampled["decoded"])


def test_ar_baseline_run_reports_exact_nll(corpus, cache, tmp_path, capsys):
    out = tmp_path / "ar"
    assert main(_args(corpus, cache, out, "--set", 'model.backbone="dit-ar-tiny"', "--set", "model.ell=1",
                      "--set", 'train.loss="ar-nll"', "--set", 'sample.sampler="ar"')) == 0
    report = json.loads((out / "report.json").read_text())
    assert [m["name"] for m in report["metrics"]] == ["ar-nll"] and report["metrics"][0]["is_bound"]
    assert report["sampling"]["nfe_mean"] == 16


def test_text_evaluation_with_judge(corpus, cache, tmp_path, capsys):
    from prime_plugin_text.evaluate import main as text_eval

    assert main(_args(corpus, cache, tmp_path / "ar", "--set", 'model.backbone="dit-ar-tiny"', "--set",
                      "model.ell=1", "--set", 'train.loss="ar-nll"', "--set", 'sample.sampler="ar"')) == 0
    assert main(_args(corpus, cache, tmp_path / "mdm")) == 0
    capsys.readouterr()
    assert text_eval([str(tmp_path / "mdm" / "checkpoint.safetensors"), "--judge",
                      str(tmp_path / "ar" / "checkpoint.safetensors"), "-n", "3", "--steps", "8", "--json",
                      "--device", "cpu"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["same_tokens"] and rep["cached"]["nfe_mean"] <= rep["uncached"]["nfe_mean"] == 8
    assert rep["gen_ppl"]["label"] == "gen. PPL (judge: prime AR baseline)" and rep["gen_ppl"]["value"] > 1
    assert 0 < rep["unigram_entropy"] <= __import__("math").log(16)


def test_text_evaluate_device_refusals_are_one_line(capsys):
    import pytest
    import torch

    from prime_plugin_text.evaluate import main as text_eval

    bad = ["bogus"] + ([] if torch.cuda.is_available() else ["cuda"])
    for spec in bad:
        with pytest.raises(SystemExit) as exc:
            text_eval(["absent.safetensors", "--device", spec])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and "argument --device:" in err


def test_prime_run_reports_word_validity_of_samples_and_prompt_completions(corpus, cache, tmp_path, capsys):
    from prime_plugin_text import TextDataset
    from prime_plugin_text.words import completion_words, text_word_validity, word_validity

    out = tmp_path / "run"
    assert main(_args(corpus, cache, out, "--set", 'sample.prompts=["Emma and ", "the quick"]',
                      "--set", "sample.per_prompt=2", "--set", "train.eval_every=2", "--set", "sample.top_p=0.9")) == 0
    report = json.loads((out / "report.json").read_text())
    vocab = TextDataset(source=str(corpus), tokenizer="bpe", tokenizer_options={"vocab_size": 300}, length=16,
                        cache_dir=cache).training_vocabulary()
    [score] = report["sample_scores"]
    assert score["name"] == "word_validity"
    assert score["value"] == text_word_validity(report["samples"], vocab).fraction  # every sample (2 ≤ 8 shown)
    rows = report["completions"]["rows"]
    assert [r["prompt"] for r in rows] == ["Emma and ", "Emma and ", "the quick", "the quick"]
    expected = word_validity([completion_words(r["prompt"], r["prompt"] + r["completion"]) for r in rows], vocab)
    [cscore] = report["completions"]["scores"]
    assert cscore["value"] == expected.fraction and cscore["detail"] == f"{expected.valid} of {expected.total} generated words"
    assert report["sampling"]["top_p"] == 0.9 and report["sampling"]["sampler"] == "ancestral"
    md = (out / "report.md").read_text()
    assert "## Prompt completions" in md and "word-validity fraction" in md and "top-p 0.9" in md
    assert "Validation during training" in md and "![training loss and validation bound](loss.png)" in md
    assert "idle-step ratio" in md and "PPL ≤" in md
    assert "word-validity fraction" in capsys.readouterr().out


def test_evaluate_takes_both_spellings_of_the_draw_flag(capsys):
    """--draw-dtype, and the deprecated --gumbel-dtype with one "warning:" line (the keyword it sets is draw_dtype)."""
    import pytest

    from prime_core.cliargs import Parser
    from prime_plugin_text.evaluate import add_arguments

    p = Parser(prog="t")
    add_arguments(p)
    assert p.parse_args(["c", "--draw-dtype", "float32"]).draw_dtype == "float32"
    with pytest.warns(DeprecationWarning, match="--gumbel-dtype is deprecated: use --draw-dtype"):
        assert p.parse_args(["c", "--gumbel-dtype", "float64"]).draw_dtype == "float64"
    assert capsys.readouterr().err.startswith("warning: --gumbel-dtype is deprecated")
