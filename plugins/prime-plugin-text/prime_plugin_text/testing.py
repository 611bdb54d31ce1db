"""Test helpers for this and other distributions' tests (prime-plugin-serve's, the lm-eval adapter's): a tiny
trained text checkpoint, built through the public API only.

Needs prime-plugin-dit installed (the ``dit-tiny`` backbone). Nothing here is imported by the plugin itself.
"""

from __future__ import annotations

import os

from prime_core import get_registry, load_config

#: the corpus's words; a line is ``words_per_line`` of them starting at line·stride (mod 15), so every line differs
WORDS = "the quick brown fox jumps over a lazy dog while Emma and Harriet walk to Highbury".split()


def tiny_corpus(path, *, stride: int = 7, words_per_line: int = 12, lines: int = 200):
    """Write the tiny English corpus to ``path`` (a `pathlib.Path`) and return it."""
    path.write_text("\n".join(" ".join(WORDS[(i * stride + j) % len(WORDS)] for j in range(words_per_line))
                              for i in range(lines)), encoding="utf-8")
    return path


def tiny_text_checkpoint(root, *, stride: int = 7, words_per_line: int = 12, sets: tuple[str, ...] = ()) -> str:
    """Train a byte-level-BPE text model (vocab 300, L = 16 tokens, ℓ = 2, a width-16 ``dit-tiny``) for 3 steps
    of batch 4 on `tiny_corpus` into ``root``/run, exactly as ``prime train --set …`` would (the registered
    trainer's ``fit``); ``sets`` are further ``--set`` overrides, e.g. ``("sample.steps=8",)``. Returns the
    checkpoint's path. Seconds on a CPU; its samples are not meant to read well."""
    corpus = tiny_corpus(root / "corpus.txt", stride=stride, words_per_line=words_per_line)
    data = (f'data.options={{ source = "{corpus}", tokenizer = "bpe", tokenizer_options = {{ vocab_size = 300 }}, '
            f'length = 16, cache_dir = "{root / "cache"}" }}')
    config = load_config(None, ['data.dataset="text"', data, 'model.backbone="dit-tiny"', "model.width=16",
                                "model.ell=2", "train.steps=3", "train.batch_size=4", "train.warmup=0",
                                "eval.tstep_steps=4", *sets])
    out = os.path.join(str(root), "run")
    return str(get_registry().build("trainer", config.train.trainer).fit(config, out_dir=out, resume=False,
                                                                         progress=False, force=False))
