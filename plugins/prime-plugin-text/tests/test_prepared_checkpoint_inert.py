"""Issue 10 item 5: a checkpoint never decides what prime reads or writes. A checkpoint trained on a prepared
corpus names that folder (data.options.prepared) and a cache folder in its config; `prime sample` decodes with
the stored tokenizer and opens nothing there, `prime eval` asks for --data-option prepared=PATH and then reads
only the user's folder. Every file opened is recorded (builtins.open: numpy's memmap and np.load use it too)."""

import builtins
import json

import pytest

from prime_core import Config, DataConfig, ModelConfig, build_model, save_model
from prime_core.cli.app import main
from prime_plugin_text.prepare import PrepareRequest, prepare


def _prepare(folder, tmp_path, n=40):
    src = tmp_path / f"{folder}-src"
    src.mkdir()
    for i in range(n):
        (src / f"d{i}.txt").write_text(f"document {i}: " + "Emma walks to Highbury. " * (3 + i % 5), encoding="utf-8")
    prepare(PrepareRequest([str(src)], str(tmp_path / folder), progress=False, split="train=0.6,valid=0.2,test=0.2"))
    return tmp_path / folder


@pytest.fixture
def opened(monkeypatch, tmp_path):
    paths, real = [], builtins.open

    def record(file, *args, **kwargs):
        paths.append(str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", record)
    monkeypatch.setenv("PRIME_CACHE", str(tmp_path / "user-cache"))
    return paths


def test_sample_and_eval_never_touch_the_folders_a_checkpoint_names(tmp_path, capsys, opened):
    foreign, mine = _prepare("foreign", tmp_path), _prepare("mine", tmp_path)
    foreign_cache = tmp_path / "foreign-cache"
    options = {"prepared": str(foreign), "cache_dir": str(foreign_cache), "length": 16}
    cfg = Config(data=DataConfig(dataset="text", options=options),
                 model=ModelConfig(num_classes=256, length=16, ell=2, width=8,
                                   backbone_options={"hidden": 16, "depth": 1}))
    ckpt = save_model(str(tmp_path / "c.safetensors"), build_model(cfg), cfg,
                      extra_meta={"data": {"tokenizer": {"name": "bytes"}}})
    opened.clear()

    def touched(folder):
        return [p for p in opened if p.startswith(str(folder))]

    assert main(["sample", ckpt, "-n", "2", "--steps", "2", "--quiet", "--json"]) == 0
    assert all(isinstance(t, str) for t in json.loads(capsys.readouterr().out)["decoded"])  # stored tokenizer
    assert touched(foreign) == [] and touched(mine) == [] and not foreign_cache.exists()

    assert main(["eval", ckpt, "--mc", "1", "--max-sequences", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pass --data-option prepared=PATH" in err[0], err
    assert touched(foreign) == []

    assert main(["eval", ckpt, "--mc", "1", "--max-sequences", "2", "--data-option", f"prepared={mine}"]) == 0
    assert "BPB ≤" in capsys.readouterr().out
    assert touched(foreign) == [] and not foreign_cache.exists() and not (tmp_path / "user-cache").exists()
    assert any(p.endswith("valid.bin") for p in touched(mine))


def test_eval_refuses_a_prepared_folder_tokenized_with_another_tokenizer(tmp_path, capsys):
    """The user's folder must hold the checkpoint's own tokens: another BPE (same C) is a one-line error."""
    from prime_plugin_text.tokenizer import BPETokenizer

    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"d{i}.txt").write_text(f"letters from Donwell {i} " * 6, encoding="utf-8")
    prepare(PrepareRequest([str(src)], str(tmp_path / "mine"), tokenizer="bpe", tokenizer_options={"vocab_size": 300},
                           progress=False, split="train=0.6,valid=0.2,test=0.2"))
    stored = BPETokenizer(300).trained(["strawberries at Donwell Abbey, " * 20]).to_json()
    cfg = Config(data=DataConfig(dataset="text", options={"prepared": "/nowhere", "length": 16}),
                 model=ModelConfig(num_classes=300, length=16, ell=2, width=8,
                                   backbone_options={"hidden": 16, "depth": 1}))
    ckpt = save_model(str(tmp_path / "c.safetensors"), build_model(cfg), cfg,
                      extra_meta={"data": {"tokenizer": stored}})
    assert main(["eval", ckpt, "--mc", "1", "--max-sequences", "2", "--data-option",
                 f"prepared={tmp_path / 'mine'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was tokenized with another bpe tokenizer than this checkpoint's" in err[0], err
