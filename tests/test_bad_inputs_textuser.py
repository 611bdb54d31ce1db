"""Bad inputs of a text user's commands (issue 23, slice "textuser"): one line naming what is wrong and what is
allowed, exit 2, nothing written."""

from __future__ import annotations

import os

import pytest

from prime_core import Config, DataConfig, ModelConfig, build_model, save_model
from prime_core.cli.app import main

pytest.importorskip("prime_plugin_text")


def _docs(root, n):
    src = root / "src"
    src.mkdir()
    for i in range(n):
        (src / f"d{i}.txt").write_text(f"letters from Donwell {i} " * 6, encoding="utf-8")
    return src


def _bpe_checkpoint(tmp_path):
    """A checkpoint whose stored tokenizer is a BPE with C = 300 (no training needed for a load error)."""
    from prime_plugin_text.tokenizer import BPETokenizer

    stored = BPETokenizer(300).trained(["strawberries at Donwell Abbey, " * 20]).to_json()
    cfg = Config(data=DataConfig(dataset="text", options={"prepared": "/nowhere", "length": 16}),
                 model=ModelConfig(num_classes=300, length=16, ell=2, width=8,
                                   backbone_options={"hidden": 16, "depth": 1}))
    return save_model(str(tmp_path / "c.safetensors"), build_model(cfg), cfg,
                      extra_meta={"data": {"tokenizer": stored}})


def test_prepared_corpus_of_another_tokenizer_names_both(tmp_path, capsys):
    """A bytes-tokenized folder under a bpe checkpoint: the line names the folder's tokenizer (bytes, its C) and
    the checkpoint's (bpe, its C), not "another bytes tokenizer"."""
    ckpt = _bpe_checkpoint(tmp_path)
    prepared = tmp_path / "bytes"
    assert main(["data", "prepare", str(_docs(tmp_path, 30)), "--out", str(prepared), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", ckpt, "--mc", "1", "--max-sequences", "2", "--data-option", f"prepared={prepared}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "was tokenized with the bytes tokenizer (C=" in err[0]
    assert "but this checkpoint's tokenizer is bpe (C=300)" in err[0] and "another" not in err[0]


def test_explicit_split_that_leaves_a_split_empty_is_still_refused(tmp_path, capsys):
    """Only the default split moves its cuts; a split the user wrote is taken as given (one line, nothing written)."""
    src, out = _docs(tmp_path, 5), tmp_path / "out"
    assert main(["data", "prepare", str(src), "--out", str(out), "--quiet",
                 "--split", "train=0.98,valid=0.01,test=0.01"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "split got no document" in err[0] and "--text-unit" in err[0], err
    assert not os.path.exists(out)


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "many"])
def test_eval_batch_size_must_be_a_whole_number(tmp_path, capsys, value):
    """`prime eval --batch-size` (lower it when [B, L, C] logits do not fit): refused by argparse, exit 2."""
    ckpt = _bpe_checkpoint(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["eval", ckpt, "--batch-size", value])
    assert exc.value.code == 2 and "--batch-size" in capsys.readouterr().err
