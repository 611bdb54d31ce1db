"""Tokenizers: round trips, sizes, BOS/EOS, JSON restore, GPT-2 files."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from prime_core import PrimeError
from prime_plugin_text.tokenizer import (BPETokenizer, ByteTokenizer, GPT2Tokenizer, _merges_from_ranks,
                                         bytes_to_unicode, tokenizer_from_json)

TRAIN = ["It is a truth universally acknowledged, that a single man in possession of a good fortune, "
         "must be in want of a wife. — café, naïve, “quotes”."] * 20


@settings(max_examples=25, deadline=None)
@given(st.text())
def test_bytes_round_trip(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert all(0 <= i < 256 for i in ids) and tok.bos_id not in ids and tok.eos_id not in ids
    assert tok.decode([tok.bos_id] + ids + [tok.eos_id]) == text


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer(300).trained(TRAIN)


@settings(max_examples=25, deadline=None)
@given(st.text())
def test_bpe_round_trip_any_unicode(bpe, text):
    ids = bpe.encode(text)
    assert all(2 <= i < bpe.vocab_size for i in ids)  # 0, 1 are BOS/EOS, never produced from text
    assert bpe.decode([bpe.bos_id] + ids + [bpe.eos_id]) == text


def test_bpe_compresses_and_restores_from_json(bpe):
    text = TRAIN[0]
    assert len(bpe.encode(text)) < len(text.encode())
    again = tokenizer_from_json(json.loads(json.dumps(bpe.to_json())))
    assert again.encode(text) == bpe.encode(text) and again.vocab_size == 300


def test_bpe_bad_vocab_size():
    with pytest.raises(ValueError, match="258"):
        BPETokenizer(100)


def test_gpt2_from_vocab_and_merges_files(tmp_path, bpe):
    # write GPT-2 style files (encoder.json + vocab.bpe) from a trained byte-level BPE, then load them
    model = json.loads(bpe._hf.to_str())["model"]
    kept = sorted((v, k) for k, v in model["vocab"].items() if not k.startswith("<|"))
    vocab = {k: i for i, (_, k) in enumerate(kept)}  # GPT-2 numbering: 0 … N−1, then <|endoftext|>
    (tmp_path / "encoder.json").write_text(json.dumps(vocab), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tok = GPT2Tokenizer(encoder=str(tmp_path / "encoder.json"), merges=str(tmp_path / "vocab.bpe")).trained([])
    text = "a single man, café"
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == len(vocab) + 1 and tok.eos_id == tok.bos_id == tok.vocab_size - 1
    assert tok.encode(text) == [i - 2 for i in bpe.encode(text)]  # same merges, ids shifted past BOS/EOS
    assert tokenizer_from_json(tok.to_json()).encode(text) == tok.encode(text)


def test_gpt2_from_tiktoken_file(tmp_path):
    import base64

    ranks = {bytes([b]): b for b in range(256)}
    for new in (b"th", b"the", b" t", b" the"):
        ranks[new] = len(ranks)
    assert _merges_from_ranks(ranks) == [(b"t", b"h"), (b"th", b"e"), (b" ", b"t"), (b" t", b"he")] or \
        _merges_from_ranks(ranks)[:3] == [(b"t", b"h"), (b"th", b"e"), (b" ", b"t")]
    path = tmp_path / "gpt2.tiktoken"
    path.write_text("".join(f"{base64.b64encode(k).decode()} {v}\n" for k, v in ranks.items()))
    tok = GPT2Tokenizer(tiktoken=str(path)).trained([])
    assert tok.decode(tok.encode("the theme")) == "the theme"
    assert len(tok.encode(" the")) == 1
    assert len(bytes_to_unicode()) == 256


def test_gpt2_needs_files():
    with pytest.raises(ValueError, match="encoder.json"):
        GPT2Tokenizer()
    with pytest.raises(PrimeError, match="not found"):
        GPT2Tokenizer(tiktoken="/nonexistent/gpt2.tiktoken").trained([])
