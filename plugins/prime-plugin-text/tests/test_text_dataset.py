"""Text data set: packing with BOS/EOS, deterministic disjoint splits, caching, checkpoint restore, bad input."""

import pytest
import torch

from prime_core import Config, ConfigError, DataConfig, ModelConfig, PrimeError, build_dataset
from prime_plugin_text import TextDataset, corpus as corpus_mod
from prime_plugin_text.corpus import split_text
from prime_plugin_text.tokenizer import ByteTokenizer


def test_packing_blocks_bos_eos_and_exact_text(corpus, cache):
    ds = TextDataset(str(corpus), tokenizer="bytes", length=32, cache_dir=cache)
    text = corpus.read_text(encoding="utf-8")
    train_text, valid_text, test_text = split_text(text, (0.05, 0.05))
    for name, part in (("train", train_text), ("valid", valid_text), ("test", test_text)):
        blocks = ds.split(name)
        assert blocks.dtype == torch.long and blocks.shape[1] == 32 and blocks.shape[0] >= 1
        stream = blocks.flatten().tolist()
        assert stream[0] == ByteTokenizer.bos_id
        expected = [ByteTokenizer.bos_id, *part.encode(), ByteTokenizer.eos_id]
        assert stream == expected[: len(stream)] and len(expected) - len(stream) < 32  # only the tail dropped
    assert abs(ds.bytes_per_token("train") - 1.0) < 0.01  # bytes: one byte per token (BOS/EOS aside)


def test_splits_are_contiguous_disjoint_and_deterministic(corpus):
    text = corpus.read_text(encoding="utf-8")
    parts = split_text(text, (0.1, 0.1))
    assert "".join(parts) == text and all(p.endswith("\n") or p == parts[2] for p in parts)
    assert split_text(text, (0.1, 0.1)) == parts
    assert 0.7 < len(parts[0]) / len(text) < 0.85


def test_tokenized_once_then_cached(corpus, cache, monkeypatch):
    first = TextDataset(str(corpus), tokenizer="bpe", tokenizer_options={"vocab_size": 300}, length=16,
                        cache_dir=cache)
    train = first.split("train")

    def boom(*a, **k):
        raise AssertionError("tokenized again")

    monkeypatch.setattr("prime_plugin_text.tokenizer.BPETokenizer.trained", boom)
    monkeypatch.setattr("prime_plugin_text.tokenizer._HFTokenizer.encode", boom)
    again = TextDataset(str(corpus), tokenizer="bpe", tokenizer_options={"vocab_size": 300}, length=16,
                        cache_dir=cache)
    assert torch.equal(again.split("train"), train)


def test_tokenizer_restored_from_checkpoint_meta_decodes_without_corpus(corpus, cache, tmp_path):
    ds = TextDataset(str(corpus), tokenizer="bpe", tokenizer_options={"vocab_size": 300}, length=16,
                     cache_dir=cache)
    meta = ds.checkpoint_meta()
    blocks = ds.split("valid")[:2]
    fresh = TextDataset(str(tmp_path / "gone.txt"), tokenizer="bpe", tokenizer_options={"vocab_size": 300},
                        length=16, cache_dir=str(tmp_path / "other"))
    fresh.load_checkpoint_meta(meta)
    assert fresh.decode_samples(blocks) == ds.decode_samples(blocks)  # no corpus read


def test_vocabulary_mismatch_is_one_line_error(corpus, cache):
    ds = TextDataset(str(corpus), tokenizer="bpe", tokenizer_options={"vocab_size": 300}, length=16, cache_dir=cache)
    meta = ds.checkpoint_meta()
    cfg = Config(model=ModelConfig(num_classes=256, length=16),
                 data=DataConfig(dataset="text", options={"source": str(corpus), "tokenizer": "bpe",
                                                          "tokenizer_options": {"vocab_size": 300},
                                                          "length": 16, "cache_dir": cache}))
    with pytest.raises(ConfigError, match="vocabulary mismatch"):
        build_dataset(cfg, data_meta=meta)
    with pytest.raises(PrimeError, match="tokenizer is 'bpe'"):
        TextDataset(str(corpus), tokenizer="bytes", cache_dir=cache).load_checkpoint_meta(meta)


@pytest.mark.parametrize("content, match", [(b"", "empty"), (b"  \n\n", "empty"),
                                            (b"caf\xe9 au lait\n", "not UTF-8")])
def test_bad_files(tmp_path, cache, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(PrimeError, match=match) as info:
        TextDataset(str(path), tokenizer="bytes", cache_dir=cache).split("train")
    assert "\n" not in str(info.value)


def test_corpus_shorter_than_one_block(tmp_path, cache):
    path = tmp_path / "short.txt"
    path.write_text("A short line.\n" * 20, encoding="utf-8")
    with pytest.raises(PrimeError, match="shorter than one block"):
        TextDataset(str(path), tokenizer="bytes", length=512, cache_dir=cache).split("train")


def test_missing_source_and_folder(tmp_path, cache, corpus):
    with pytest.raises(PrimeError, match="not found"):
        TextDataset(str(tmp_path / "nope.txt"), tokenizer="bytes", cache_dir=cache).split("train")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "b.txt").write_text(corpus.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "a.txt").write_text(corpus.read_text(encoding="utf-8")[::-1], encoding="utf-8")
    docs = corpus_mod.read_source(str(folder))
    assert [d.name.rsplit("/", 1)[-1] for d in docs] == ["a.txt", "b.txt"]
    assert TextDataset(str(folder), tokenizer="bytes", length=32, cache_dir=cache).split("valid").shape[0] >= 2


def test_fsspec_url(cache, corpus):
    import fsspec

    with fsspec.open("memory://corpus/austenish.txt", "wb") as fh:
        fh.write(corpus.read_bytes())
    ds = TextDataset("memory://corpus/austenish.txt", tokenizer="bytes", length=32, cache_dir=cache)
    assert ds.split("test").shape[1] == 32


def test_missing_austen_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus_mod, "AUSTEN_DIR", str(tmp_path))
    monkeypatch.setattr(corpus_mod.read_austen, "__defaults__", (str(tmp_path),))
    with pytest.raises(PrimeError, match="apt-get install -y r-cran-janeaustenr"):
        corpus_mod.read_sources("austen")


@pytest.mark.skipif(not __import__("os").path.isfile(corpus_mod.AUSTEN_DIR + "/Rdata.rdb"),
                    reason="r-cran-janeaustenr not installed")
def test_austen_has_six_novels():
    docs = corpus_mod.read_austen()
    assert len(docs) == 6 and any("Elizabeth" in d.text for d in docs)
    assert sum(len(d.text) for d in docs) > 3_000_000
