"""Token boundaries and EOS with the real byte-level BPE (issue 23 items 3, 4): prompts / infill / completions
joined at the text level, `data.options.documents = "paragraphs"` putting EOS between paragraphs, and
`--stop-at-eos` trimming the rows of a tiny model trained on them. The tokenizer-free core side is in
tests/test_text_boundaries.py."""

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from prime_core.cli.app import main
from prime_core.api import NEW_WORD, SPACED, decode_row, encode_infill, encode_prompt, word_start_table
from prime_plugin_text.dataset import TextDataset

WORDS = "She said that it is a truth universally acknowledged of Emma and Harriet walk".split()
PARAGRAPHS = ["Emma walked to Highbury.", "She said that it is a truth.", "Harriet smiled,\nand left.",
              "Of letters and of weather."]


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    root = tmp_path_factory.mktemp("bpe")
    corpus = root / "c.txt"
    corpus.write_text(" ".join(WORDS) * 30 + " acknowledgeding\n", encoding="utf-8")
    ds = TextDataset(source=str(corpus), tokenizer="bpe", tokenizer_options={"vocab_size": 320}, length=16,
                     cache_dir=str(root / "cache"))
    ds.split("train")
    return ds


PROMPT = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join).flatmap(
    lambda s: st.sampled_from([s, s + " ", s + ",", s + "\n"]))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=PROMPT, completion=st.lists(st.integers(0, 319), max_size=8))
def test_prompt_then_any_completion(bpe, prompt, completion):
    """decode(prompt ⊕ completion) starts with the prompt; after a word (or a comma) the completion starts a
    new word; after the prompt's space no second space."""
    p = encode_prompt(bpe, prompt)
    row = decode_row(bpe, list(p.fixed) + completion, p, None)
    assert row.decoded.startswith(prompt) and row.decoded == prompt + row.completion
    if re.search(r"[\w,]\Z", prompt) and row.completion:
        assert not row.completion[0].isalnum()
    if prompt.endswith(" "):
        assert not row.completion.startswith((" ", "\t"))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gap=st.lists(st.integers(2, 319), min_size=4, max_size=4), tail=st.lists(st.integers(2, 319), max_size=4))
def test_infill_she_said_of(bpe, gap, tail):
    """The issue's case: "She said [MASK:4] of" never doubles the space before the gap nor glues after "of"."""
    p = encode_infill(bpe, "She said [MASK:4] of")
    ids = list(p.fixed)
    ids[ids.index(-1):ids.index(-1) + 4] = gap
    row = decode_row(bpe, ids + tail, p, None).decoded
    assert row.startswith("She said ") and not row.startswith("She said  ")
    end = row.rindex(" of")
    assert row[end - 1] != " " and not row[end + 3:end + 4].isalnum()


def test_word_start_table_reads_the_bpe(bpe):
    table = word_start_table(bpe, bpe.num_classes)
    spaced = bpe.encode_text(" said")
    assert len(spaced) == 1 and table[SPACED, spaced[0]] and table[NEW_WORD, spaced[0]]
    assert not table[NEW_WORD, bpe.encode_text("said")[0]] and table[:, bpe.eos_id].all()


# EOS between paragraphs -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paragraphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("para")
    corpus = root / "p.txt"
    corpus.write_text("\n\n".join(PARAGRAPHS[i % 4] for i in range(400)) + "\n", encoding="utf-8")
    return corpus, root / "cache"


def _data(corpus, cache, **kw):
    return TextDataset(source=str(corpus), tokenizer="bpe", tokenizer_options={"vocab_size": 300}, length=16,
                       cache_dir=str(cache), **kw)


def test_paragraphs_put_eos_at_every_blank_line(paragraphs):
    corpus, cache = paragraphs
    whole, para = _data(corpus, cache), _data(corpus, cache, documents="paragraphs")
    tok = para.tokenizer
    stream = para.split("train").reshape(-1).tolist()
    holding = [tok.eos_id in block for block in para.split("train").tolist()]
    assert sum(holding) >= 0.9 * len(holding)  # paragraphs of ~14 tokens: nearly every 16-token window has an EOS
    # BOS text EOS per paragraph: cut at the EOS BOS pairs, the pieces are the paragraphs' own tokens
    pieces = [p for p in " ".join(map(str, stream)).split(f"{tok.eos_id} {tok.bos_id}")]
    inner = [[int(i) for i in p.split()] for p in pieces[1:-1]]
    texts = {tok.decode(ids) for ids in inner}
    assert texts <= set(PARAGRAPHS) and len(texts) == 4
    assert whole.split("train").eq(tok.eos_id).sum() <= 1  # one document: at most one EOS, at its end
    # the same text's bytes are counted (EOS BOS stand for the blank line's two newline tokens here)
    assert para.bytes_per_token("train") == pytest.approx(whole.bytes_per_token("train"), rel=0.05)


def test_paragraphs_option_is_checked(paragraphs):
    corpus, cache = paragraphs
    with pytest.raises(ValueError, match="documents must be one of 'whole', 'paragraphs'"):
        _data(corpus, cache, documents="lines")


def test_bad_documents_value_is_one_line_and_writes_nothing(paragraphs, tmp_path, capsys):
    corpus, cache = paragraphs
    opts = f'data.options={{ source = "{corpus}", tokenizer = "bytes", length = 16, documents = "lines" }}'
    assert main(["train", "--out", str(tmp_path / "run"), "--quiet", "--set", 'data.dataset="text"',
                 "--set", opts]) == 2
    err = capsys.readouterr().err.strip()
    assert "documents must be one of 'whole', 'paragraphs'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def stopping_ckpt(paragraphs, tmp_path_factory):
    """A tiny model trained briefly on short paragraphs: EOS is 1 in 8 tokens, so it learns to emit it."""
    corpus, cache = paragraphs
    out = tmp_path_factory.mktemp("stop") / "run"
    opts = (f'data.options={{ source = "{corpus}", tokenizer = "bpe", tokenizer_options = {{ vocab_size = 300 }}, '
            f'length = 16, cache_dir = "{cache}", documents = "paragraphs" }}')
    assert main(["train", "--out", str(out), "--quiet", "--set", 'data.dataset="text"', "--set", opts,
                 "--set", 'model.backbone="dit-tiny"', "--set", "model.width=32", "--set", "model.ell=1",
                 "--set", "train.steps=40", "--set", "train.batch_size=16", "--set", "train.warmup=0",
                 "--set", "train.lr=1e-2", "--set", "sample.steps=8", "--set", "eval.tstep_steps=4"]) == 0
    return str(out / "checkpoint.safetensors")


def test_stop_at_eos_trims_rows(stopping_ckpt, capsys):
    capsys.readouterr()
    argv = ["sample", stopping_ckpt, "-n", "16", "--steps", "8", "--json", "--quiet", "--prompt", "Emma walked"]
    assert main(argv + ["--stop-at-eos"]) == 0
    rep = json.loads(capsys.readouterr().out)
    stopped = [r for r in rep["rows"] if r["stopped_at_eos"] is not None]
    assert len(stopped) >= 8  # the model learned to stop (a random one would hardly ever emit EOS in 14 tokens)
    for row, tokens in zip(rep["rows"], rep["tokens"]):
        stop = row["stopped_at_eos"]
        if stop is not None:
            assert set(tokens[stop:]) == {1} and 1 not in tokens[:stop]  # BPE EOS = 1, the row cut there
            assert row["decoded"].startswith("Emma walked") and row["decoded"] == row["prompt"] + row["completion"]
    assert main(argv) == 0
    free = json.loads(capsys.readouterr().out)
    assert all(r["stopped_at_eos"] is None for r in free["rows"])
    assert free["tokens"][:len(rep["tokens"])] != rep["tokens"]  # without the flag the rows run past the EOS
    assert main(argv[:-2] + ["--stop-at-eos"] + argv[-2:] + ["--length", "16"]) == 0
    capsys.readouterr()
    assert main(["sample", stopping_ckpt, "-n", "4", "--steps", "8", "--quiet", "--stop-at-eos", "--prompt", "Emma"]) == 0
    printed = capsys.readouterr().out
    assert "--- sample 0" in printed and "(stopped at EOS, token" in printed
