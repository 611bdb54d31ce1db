"""Text prompts, infill, any length and zero-shot eval of local files through `prime sample` / `prime eval`."""

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from prime_core.api import decode_row, encode_infill, encode_prompt
from prime_core.cli.app import main
from prime_plugin_text.dataset import TextDataset
from prime_plugin_text.testing import tiny_text_checkpoint

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
PRINTABLE = st.text(st.characters(categories=("L", "M", "N", "P", "S", "Zs")), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """A text data set with a small byte-level BPE trained on a few lines (plus special-token look-alikes)."""
    root = tmp_path_factory.mktemp("bpe")
    corpus = root / "c.txt"
    corpus.write_text("Emma Woodhouse, handsome, clever, and rich, with a comfortable home\n" * 40, encoding="utf-8")
    ds = TextDataset(source=str(corpus), tokenizer="bpe", tokenizer_options={"vocab_size": 300}, length=16,
                     cache_dir=str(root / "cache"))
    ds.split("train")
    return ds


@pytest.fixture(scope="module")
def byte_data():
    return TextDataset(tokenizer="bytes", length=16)


def _round_trip(ds, text, extra):
    ids = ds.encode_text(text)
    assert ds.decode_text(ids) == text and all(0 <= i < ds.num_classes for i in ids)
    tail = [i % ds.num_classes for i in extra]  # anything the sampler might add after the prompt
    prompt = encode_prompt(ds, text)  # its ids: the text without trailing spaces (the next word brings them)
    assert ds.decode_text(list(prompt.fixed)) == text.rstrip(" \t")
    row = decode_row(ds, list(prompt.fixed) + tail, prompt, None)
    assert row.decoded.startswith(text) and row.decoded == text + row.completion


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(TEXT, PRINTABLE, st.sampled_from(["<|bos|>", "a<|eos|>b", "<|endoftext|>", " ", "\n\n"])),
       extra=st.lists(st.integers(0, 2**16), max_size=8))
def test_prompts_round_trip_exactly_bpe(bpe, text, extra):
    _round_trip(bpe, text, extra)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(TEXT, PRINTABLE), extra=st.lists(st.integers(0, 255), max_size=8))
def test_prompts_round_trip_exactly_bytes(byte_data, text, extra):
    _round_trip(byte_data, text, extra)


def test_infill_template_pieces_keep_their_text(bpe):
    p = encode_infill(bpe, "She said [MASK:3] and left[MASK:2]")
    assert p.fixed.count(-1) == 5 and p.fixed[-2:] == (-1, -1) and p.infill
    ids = [bpe.encode_text("x")[0] if v < 0 else v for v in p.fixed]
    text = decode_row(bpe, ids, p, None).decoded  # fixed pieces copied as written, free runs decoded between
    assert text.startswith("She said ") and " and left" in text
    assert bpe.decode_text([v for v in p.fixed if v >= 0]) == "She said and left"  # "said " ends before a gap


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_text_checkpoint(tmp_path_factory.mktemp("ckpt"), sets=("sample.steps=4",))


def _json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_prompt_rows_start_with_the_prompt(ckpt, capsys):
    text = "It is a truth universally acknowledged"
    rep = _json(capsys, ["sample", ckpt, "--prompt", text, "-n", "3", "--steps", "4", "--json", "--quiet",
                         "--length", "40"])
    assert len(rep["decoded"]) == 3 and all(d.startswith(text) for d in rep["decoded"])
    assert len(set(rep["decoded"])) > 1  # rows share the prompt, not the sample
    assert all(len(t) == 40 for t in rep["tokens"]) and rep["blocks"] > 1
    assert all(r["prompt"] == text and r["decoded"] == text + r["completion"] for r in rep["rows"])


def test_several_prompts_infill_and_jsonl(ckpt, capsys, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("Emma\n\nthe quick\n", encoding="utf-8")
    out = tmp_path / "out"
    rep = _json(capsys, ["sample", ckpt, "--prompt", "fox", "--prompts", str(prompts), "--infill",
                         "a [MASK:3] dog", "-n", "2", "--steps", "4", "--json", "--quiet", "--out", str(out)])
    heads = ["fox", "fox", "Emma", "Emma", "the quick", "the quick"]
    assert [d[:len(h)] for d, h in zip(rep["decoded"], heads)] == heads
    assert rep["decoded"][6].startswith("a ") and " dog" in rep["decoded"][6]
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {"prompt", "completion", "nfe", "idle_steps"} <= set(rows[0])


def test_batches_print_the_same_rows(ckpt, capsys):
    one = _json(capsys, ["sample", ckpt, "--prompt", "Emma", "-n", "5", "--steps", "4", "--json", "--quiet"])
    two = _json(capsys, ["sample", ckpt, "--prompt", "Emma", "-n", "5", "--steps", "4", "--json", "--quiet",
                         "--batch-size", "2"])
    assert one["tokens"] == two["tokens"]
    capsys.readouterr()
    assert main(["sample", ckpt, "--prompt", "Emma", "-n", "3", "--steps", "4", "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    heads = [i for i, line in enumerate(printed) if line.startswith("--- sample ")]
    assert [printed[i] for i in heads] == [f"--- sample {i} ---" for i in range(3)] and "3 samples" in printed[-1]
    assert all(printed[i + 1].startswith("Emma") for i in heads)  # each row's text under its header


def test_stop_at_eos_cuts_text(ckpt, capsys):
    rep = _json(capsys, ["sample", ckpt, "-n", "16", "--steps", "4", "--json", "--quiet", "--stop-at-eos",
                         "--length", "48"])
    for row, tokens in zip(rep["rows"], rep["tokens"]):
        stop = row["stopped_at_eos"]
        assert stop is None or set(tokens[stop:]) == {1}  # BPE EOS = 1


@pytest.mark.parametrize("argv, message", [
    (["--prompt", "word " * 40], "longer than the 16 tokens generated"),
    (["--infill", "no span here"], "has no [MASK:k] span"),
    (["--infill", "a [MASK:x] b"], "malformed"),
    (["--prompt", "a", "--fix", "0:3"], "cannot be combined"),
    (["--prompts", "/no/such/file"], "--prompts /no/such/file: not found"),
    (["--prompts", "/dev/zero"], "--prompts /dev/zero: is a character device"),
    (["--length", "40", "--stride", "17"], "--stride must lie in 1 … L = 16"),
])
def test_bad_prompt_input_is_one_line(ckpt, capsys, argv, message):
    assert main(["sample", ckpt, "--steps", "2", "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_eval_several_files(ckpt, capsys, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("the quick brown fox jumps over a lazy dog\n" * 20, encoding="utf-8")
    b.write_text("Emma and Harriet walk to Highbury é\n" * 10, encoding="utf-8")
    rep = _json(capsys, ["eval", ckpt, "--data", str(a), str(b), "--mc", "2", "--json"])
    assert [r["name"] for r in rep["files"]] == ["a.txt", "b.txt"]
    for row in rep["files"]:
        assert row["tokens"] == row["windows"] * 16 > 0
        names = [x["name"] for x in row["bounds"]]
        assert names == ["nelbo", "tstep-nelbo"]  # valid bounds only, never the joint loss
        for x in row["bounds"]:
            # a Monte-Carlo estimate: the "≤" figure is its 95 % upper confidence limit (docs/concepts.md)
            assert x["kind"] == "bound-estimate" and x["ucl95"] == pytest.approx(x["value"] + 1.645 * x["stderr"])
            assert x["perplexity_upper_bound"] == pytest.approx(torch.tensor(x["ucl95"]).exp().item())
            assert x["bits_per_byte_upper_bound"] > 0
    capsys.readouterr()
    assert main(["eval", ckpt, "--data", str(a), "--mc", "1"]) == 0
    assert "PPL ≤" in capsys.readouterr().out
    short = tmp_path / "s.txt"
    short.write_text("fox", encoding="utf-8")
    assert main(["eval", ckpt, "--data", str(short)]) == 2
    assert "shorter than one window of L = 16" in capsys.readouterr().err
