"""Issue 14: a text checkpoint's metadata is data. Its ``source`` and ``cache_dir`` are never read or written
(`--data-option` gives them), no network connection is attempted, a tokenizer is never retrained to decode a
checkpoint, and a corrupt stored tokenizer is a one-line error."""

import json
import os
import socket
import subprocess
import sys

import pytest

import prime_plugin_text.corpus as corpus_mod
import prime_plugin_text.dataset as dataset_mod
from prime_core import Config, DataConfig, ModelConfig, build_model, save_model
from prime_core.cli.app import main
from prime_plugin_text.dataset import TextDataset

URL_SOURCE = "http://127.0.0.1:9/corpus.txt"  # port 9 (discard): a connection attempt would be visible


def _config(source, cache_dir):
    options = {"source": source, "tokenizer": "bpe", "tokenizer_options": {"vocab_size": 300}, "length": 16,
               "cache_dir": cache_dir}
    return Config(data=DataConfig(dataset="text", options=options),
                  model=ModelConfig(num_classes=300, length=16, ell=2, width=8,
                                    backbone_options={"hidden": 16, "depth": 1}))


def _checkpoint(path, source, cache_dir, data_meta):
    cfg = _config(source, cache_dir)
    return save_model(str(path), build_model(cfg), cfg, extra_meta={"data": data_meta} if data_meta is not None else {})


@pytest.fixture
def tokenizer_meta(corpus, tmp_path):
    return TextDataset(str(corpus), tokenizer="bpe", tokenizer_options={"vocab_size": 300}, length=16,
                       cache_dir=str(tmp_path / "train-cache")).checkpoint_meta()


@pytest.fixture
def guarded(monkeypatch, tmp_path):
    """No network, the user's own cache in tmp_path, and a record of every corpus read."""
    reads = []
    real = corpus_mod.read_sources

    def record(sources):
        reads.append(sources)
        return real(sources)

    def no_network(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(dataset_mod, "read_sources", record)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("PRIME_CACHE", str(tmp_path / "user-cache"))
    return reads


def _one_line(capsys, pattern):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prime: error:") and pattern in err[0], err


def test_eval_never_reads_a_stored_url_or_writes_a_stored_cache(tmp_path, corpus, tokenizer_meta, guarded, capsys):
    evil_cache = tmp_path / "elsewhere"
    ckpt = _checkpoint(tmp_path / "c.safetensors", URL_SOURCE, str(evil_cache), tokenizer_meta)
    assert main(["eval", ckpt, "--mc", "1", "--max-sequences", "2"]) == 2
    _one_line(capsys, "data.options.source, a location, which prime never takes from a checkpoint: pass "
                      "--data-option source=PATH")
    assert guarded == [] and not evil_cache.exists()
    # the user names the data: it is read, the stored cache_dir is not used (the user's default cache is)
    assert main(["eval", ckpt, "--mc", "1", "--max-sequences", "2", "--data-option", f"source={corpus}"]) == 0
    assert guarded == [str(corpus)] and not evil_cache.exists() and os.listdir(tmp_path / "user-cache")
    capsys.readouterr()
    # sampling decodes with the stored tokenizer, reading nothing
    assert main(["sample", ckpt, "-n", "2", "--steps", "2", "--quiet", "--json"]) == 0
    decoded = json.loads(capsys.readouterr().out)["decoded"]
    assert len(decoded) == 2 and guarded == [str(corpus)] and not evil_cache.exists()


def test_data_option_takes_only_locations(tmp_path, tokenizer_meta, guarded, capsys):
    ckpt = _checkpoint(tmp_path / "c.safetensors", URL_SOURCE, None, tokenizer_meta)
    assert main(["eval", ckpt, "--data-option", "length=8"]) == 2
    _one_line(capsys, "takes only its locations from the command line (source, cache_dir, prepared)")


def test_sample_without_stored_tokenizer_never_trains_one(tmp_path, corpus, guarded, capsys):
    ckpt = _checkpoint(tmp_path / "c.safetensors", str(corpus), None, None)
    for extra in ([], ["--data-option", f"source={corpus}"]):  # not even from the user's own data
        assert main(["sample", ckpt, "-n", "2", "--steps", "2", "--quiet", "--json", *extra]) == 0
        captured = capsys.readouterr()
        decoded = json.loads(captured.out)["decoded"]
        assert all(len(row.split()) == 16 for row in decoded)  # token ids, not text
        assert "samples shown as token ids (this checkpoint stores no bpe tokenizer" in captured.err
    assert guarded == [] and not (tmp_path / "user-cache").exists()
    assert main(["sample", ckpt, "-n", "2", "--steps", "2", "--quiet", "--out", str(tmp_path / "o")]) == 2
    _one_line(capsys, "stores no bpe tokenizer, and prime never trains one to read a checkpoint")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("stored,pattern", [
    ({"tokenizer": {"name": "bpe", "vocab_size": 300, "tokenizer": "{not json"}}, "tokenizer is corrupt"),
    ({"tokenizer": {"name": "bpe", "vocab_size": "many", "tokenizer": "{}"}}, "tokenizer is corrupt"),
    ({"tokenizer": ["bpe"]}, "tokenizer must be a JSON object, got list"),
    ([1, 2], "'data' must be a JSON object, got list"),
])
@pytest.mark.parametrize("command", ["eval", "sample"])
def test_corrupt_stored_tokenizer_is_one_line(tmp_path, corpus, guarded, capsys, stored, pattern, command):
    ckpt = _checkpoint(tmp_path / "c.safetensors", str(corpus), None, stored)
    extra = (["--out", str(tmp_path / "o"), "-n", "1", "--steps", "2", "--quiet"] if command == "sample"
             else ["--data-option", f"source={corpus}", "--max-sequences", "2", "--mc", "1"])
    assert main([command, ckpt, *extra]) == 2
    _one_line(capsys, pattern)
    assert not (tmp_path / "o").exists()


def test_subprocess_eval_with_stored_url_source(tmp_path, tokenizer_meta):
    """The real command: exit code 2, one stderr line, nothing written."""
    ckpt = _checkpoint(tmp_path / "c.safetensors", URL_SOURCE, str(tmp_path / "elsewhere"), tokenizer_meta)
    env = dict(os.environ, PRIME_CACHE=str(tmp_path / "user-cache"))
    out = subprocess.run([sys.executable, "-m", "prime_core", "eval", ckpt], capture_output=True, text=True,
                         env=env, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "pass --data-option source=PATH" in lines[0], out.stderr
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "user-cache").exists()
