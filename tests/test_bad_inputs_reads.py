"""Issue 24 items 6, 7, 9 (export / import) and issue 23 item 7 (import): bounded reads, the restricted
unpickler's limits, and outputs checked before the work. Every case: one line, exit 2, nothing written, fast."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
import tracemalloc
import zipfile

import pytest

from prime_core import ConfigError, PrimeError
from prime_core import fileio
from prime_core.cli.app import main as prime

DIT_TESTS = os.path.join(os.path.dirname(__file__), "..", "plugins", "prime-plugin-dit", "tests")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("prime: error:"), err
    return err


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)  # nobody writes to it: opening it would block forever, so it must never be opened
    return str(path)


# ------------------------------------------------------------------------------------------------ 24.6 reads
@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "folder"])
def test_config_must_be_a_regular_file(tmp_path, fifo, capsys, special):
    path = {"/dev/zero": "/dev/zero", "fifo": fifo, "folder": str(tmp_path)}[special]
    t0 = time.perf_counter()
    assert prime(["train", "--config", path, "--out", str(tmp_path / "run")]) == 2
    assert time.perf_counter() - t0 < 10
    err = _one_line(capsys)
    assert f"--config {path}" in err
    assert {"/dev/zero": "character device", "fifo": "FIFO", "folder": "is a folder"}[special] in err
    assert not (tmp_path / "run").exists()


def test_config_over_the_limit(tmp_path):
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (fileio.MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match=r"more than the 1 MiB allowed"):
        from prime_core.runs.config import load_config

        load_config(str(big))


def test_config_from_stdin_of_dev_zero_is_refused(tmp_path):
    """``prime train --config /dev/stdin < /dev/zero`` read without end; now stat sees the device behind stdin."""
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run([sys.executable, "-m", "prime_core", "train", "--config", "/dev/stdin", "--out",
                               str(tmp_path / "run")], stdin=zero, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "character device" in lines[0] and "only regular files" in lines[0]


def test_read_bounded_reads_at_most_limit_plus_one(monkeypatch):
    """Even where the size is unknown before reading (a URL without one, a file that grows), no more than
    limit + 1 bytes are read: /dev/zero with the stat check bypassed stops at once."""
    monkeypatch.setattr(fileio, "check_regular_file", lambda *a, **k: None)
    with pytest.raises(PrimeError, match="holds more than the 1 MiB allowed"):
        fileio.read_bounded("/dev/zero", fileio.MiB, "test")


def test_read_bounded_decompressed_limit(tmp_path):
    import gzip

    src = tmp_path / "bomb.txt.gz"
    src.write_bytes(gzip.compress(b"a" * (2 * fileio.MiB)))  # ~2 kB that inflate to 2 MiB
    with pytest.raises(PrimeError, match=r"holds more than the 1 MiB allowed \(decompressed\)"):
        fileio.read_bounded(str(src), fileio.MiB, "source", compression="infer")
    assert fileio.read_bounded(str(src), 4 * fileio.MiB, "source", compression="infer") == b"a" * (2 * fileio.MiB)


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_prompts_file_must_be_regular(fifo, special):
    from prime_core.sampling.prompts import read_prompts_file

    path = fifo if special == "fifo" else special
    with pytest.raises(PrimeError, match=f"--prompts {path}: is a"):
        read_prompts_file(path)


def test_prompts_file_over_the_limit(tmp_path, monkeypatch):
    from prime_core.sampling.prompts import read_prompts_file

    monkeypatch.setattr(fileio, "MAX_PROMPTS_BYTES", 100)
    path = tmp_path / "p.txt"
    path.write_text("a prompt\n" * 20)
    with pytest.raises(PrimeError, match="more than the 100 bytes allowed"):
        read_prompts_file(str(path))


def test_prompts_file_not_utf8_is_bad_input_and_lines_split_as_text_mode(tmp_path):
    from prime_core.sampling.prompts import read_prompts_file

    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9\n")
    with pytest.raises(PrimeError, match=r"not UTF-8 text \(byte 0xe9 at offset 3\)"):
        read_prompts_file(str(bad))
    good = tmp_path / "p.txt"
    good.write_bytes("one\r\ntwo\x0cstill two\rthree\n\n".encode())
    assert read_prompts_file(str(good)) == ["one", "two\x0cstill two", "three"]


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "folder"])
def test_eval_data_file_must_be_regular(tmp_path, fifo, special):
    from prime_core.runs.fileeval import read_text

    path = {"/dev/zero": "/dev/zero", "fifo": fifo, "folder": str(tmp_path)}[special]
    with pytest.raises(PrimeError) as info:
        read_text(path)
    msg = str(info.value)
    assert {"/dev/zero": "character device", "fifo": "FIFO", "folder": "is a folder"}[special] in msg
    assert "no such file" not in msg and "--data takes local UTF-8 text files" in msg  # says what is allowed


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_data_prepare_source_must_be_regular(tmp_path, fifo, capsys, special):
    path = fifo if special == "fifo" else special
    out = tmp_path / "corpus"
    assert prime(["data", "prepare", path, "--out", str(out), "--quiet"]) == 2
    err = _one_line(capsys)
    assert f"source {path}" in err and "only regular files" in err
    assert not out.exists()


def test_data_prepare_fifo_inside_a_folder(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("some text\n" * 50)
    os.mkfifo(src / "b.txt")
    assert prime(["data", "prepare", str(src), "--out", str(tmp_path / "corpus"), "--quiet"]) == 2
    assert "b.txt: is a FIFO" in _one_line(capsys)
    assert not (tmp_path / "corpus").exists()


def test_text_dataset_source_must_be_regular(fifo):
    from prime_plugin_text.corpus import read_source

    with pytest.raises(PrimeError, match="is a FIFO"):
        read_source(fifo)


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_import_source_must_be_regular(tmp_path, fifo, capsys, special):
    path = fifo if special == "fifo" else special
    out = tmp_path / "x.safetensors"
    t0 = time.perf_counter()
    assert prime(["import", "mdlm", path, "--out", str(out), "--tokenizer", "bytes"]) == 2
    assert time.perf_counter() - t0 < 10
    assert "only regular files" in _one_line(capsys)
    assert os.listdir(tmp_path) == ["pipe"]  # the fixture's FIFO only: nothing written


def test_import_hf_config_json_must_be_regular(tmp_path, capsys):
    folder = tmp_path / "hf"
    folder.mkdir()
    os.symlink("/dev/zero", folder / "config.json")
    assert prime(["import", "mdlm", str(folder), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "config.json: is a character device" in _one_line(capsys)


def test_gpt2_tokenizer_files_must_be_regular(fifo):
    """``--tokenizer-option encoder=… merges=…`` of ``prime import``: checked like every other read."""
    from prime_plugin_text.tokenizer import tokenizer_class

    with pytest.raises(PrimeError, match="gpt2 tokenizer file /dev/zero: is a character device"):
        tokenizer_class("gpt2")(encoder="/dev/zero", merges=fifo).trained([])


def _refused_port() -> int:
    import socket

    with socket.socket() as s:  # a port nobody listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_is_not_not_found():
    pytest.importorskip("aiohttp")
    from prime_core import CheckpointError, read_checkpoint

    url = f"http://127.0.0.1:{_refused_port()}/x"
    with pytest.raises(PrimeError, match="connection refused"):
        fileio.read_bounded(url + ".toml", fileio.MiB, f"--config {url}.toml")
    with pytest.raises(CheckpointError, match="connection refused"):
        read_checkpoint(url + ".safetensors")


# ------------------------------------------------------------------------------------------------ 24.7 unpickler
def _torch_zip(path, obj) -> None:
    """A file laid out as torch.save writes it (zip: archive/data.pkl, archive/byteorder), protocol 2."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr("archive/byteorder", b"little")


def _shared_list_bomb(levels: int = 40):
    """40 levels of [a, a]: a few hundred bytes pickled (the memo shares each level), 2⁴⁰ values expanded."""
    a: list = []
    for _ in range(levels):
        a = [a, a]
    return a


def test_shared_reference_bomb_is_refused_fast_with_bounded_memory(tmp_path, capsys):
    from prime_plugin_dit.importer import read_source  # imported first: the timing is the refusal's alone

    path = tmp_path / "bomb.ckpt"
    _torch_zip(path, {"state_dict": {}, "hyper_parameters": {"config": {"model": _shared_list_bomb()}}})
    assert path.stat().st_size < 1000
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(PrimeError) as info:
            read_source(str(path))
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "expand to more than" in str(info.value) and "shared references" in str(info.value)
    assert elapsed < 2.0, elapsed  # was 37 s and 2.5 GB; about a millisecond now
    assert peak < 50 * 2**20, peak
    out = tmp_path / "x.safetensors"
    t0 = time.perf_counter()
    assert prime(["import", "mdlm", str(path), "--out", str(out), "--tokenizer", "bytes"]) == 2
    assert time.perf_counter() - t0 < 2.0
    assert "expand to more than" in _one_line(capsys)
    assert not out.exists()


def test_copy_budget_holds_without_the_estimate(monkeypatch):
    """`to_plain` counts while copying too: with the up-front estimate disabled the bomb still stops at the limit."""
    from prime_plugin_dit import safeload

    monkeypatch.setattr(safeload, "expanded_size", lambda *a, **k: 0)
    t0 = time.perf_counter()
    with pytest.raises(PrimeError, match="expand to more than"):
        safeload.to_plain({"config": _shared_list_bomb()})
    assert time.perf_counter() - t0 < 5.0


def test_bomb_beside_the_config_is_never_walked(tmp_path, capsys):
    """A realistic Lightning checkpoint (written by torch.save, with a Hydra config and records) whose
    hyper-parameters hold the bomb beside ``config``: only the config is turned into plain data, so the import
    succeeds at once and the shared structure is never expanded."""
    sys.path.insert(0, DIT_TESTS)
    try:
        from official_files import lightning_checkpoint
    finally:
        sys.path.remove(DIT_TESTS)
    path = tmp_path / "bomb.ckpt"
    lightning_checkpoint(path, "dit", c=256, ell=1, b=256, extra_hparams={"bomb": _shared_list_bomb()})
    from prime_plugin_dit.importer import read_source

    t0 = time.perf_counter()
    source = read_source(str(path))
    assert time.perf_counter() - t0 < 2.0
    assert source.hparams["model.length"] == 6 and not any(k.startswith("bomb") for k in source.hparams)


def test_deep_nesting_is_refused(tmp_path):
    from prime_plugin_dit.safeload import MAX_PLAIN_DEPTH, to_plain

    deep: list = []
    for _ in range(MAX_PLAIN_DEPTH + 5):
        deep = [deep]
    with pytest.raises(PrimeError, match=f"nest more than {MAX_PLAIN_DEPTH} deep"):
        to_plain(deep)


def test_pickle_depth_and_object_limits(monkeypatch):
    from prime_plugin_dit import safeload

    deep = b"\x80\x02" + b"(" * (safeload.MAX_PICKLE_DEPTH + 1) + b"."
    with pytest.raises(PrimeError, match=f"nests objects more than {safeload.MAX_PICKLE_DEPTH} deep"):
        safeload.scan_pickle(deep)
    monkeypatch.setattr(safeload, "MAX_PICKLE_OPS", 1000)
    many = pickle.dumps([[] for _ in range(2000)], protocol=2)
    with pytest.raises(PrimeError, match="more than 1,000 objects"):
        safeload.scan_pickle(many)
    assert safeload.scan_pickle(pickle.dumps([[] for _ in range(100)], protocol=2)) < 1000


def test_pickle_scan_refuses_a_negative_length():
    from prime_plugin_dit.safeload import scan_pickle

    with pytest.raises(PrimeError, match="negative length"):
        scan_pickle(b"\x80\x02T\xfb\xff\xff\xff.")  # BINSTRING of length −5 would step back onto itself


def test_pickle_scan_counts_like_pickletools():
    import pickletools

    obj = {"a": [1, 2.5, "x" * 300, b"y" * 70000, (None, True)], "b": {frozenset({1}), 2**70}, "c": "é"}
    for proto in (0, 2, 4, 5):
        data = pickle.dumps(obj, protocol=proto)
        from prime_plugin_dit.safeload import scan_pickle

        assert scan_pickle(data) == sum(1 for _ in pickletools.genops(data)), proto


def test_oversized_data_pkl_is_refused_before_reading(tmp_path, monkeypatch):
    from prime_plugin_dit import safeload

    monkeypatch.setattr(safeload, "MAX_PICKLE_BYTES", 64)
    path = tmp_path / "big.ckpt"
    _torch_zip(path, {"state_dict": {}, "pad": "x" * 100})
    with pytest.raises(PrimeError, match="data.pkl declares"):
        safeload.read_torch_file(str(path))


# ------------------------------------------------------------------------------------------------ 24.9 / 23.7 outputs
@pytest.mark.parametrize("url", ["memory://x.safetensors", "s3://bucket/x.safetensors"])
def test_import_refuses_a_url_output(tmp_path, capsys, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    assert prime(["import", "mdlm", "missing.ckpt", "--out", url]) == 2
    assert "writes a local file only" in _one_line(capsys)
    assert os.listdir(tmp_path) == []


def test_import_refuses_a_folder_output(tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    assert prime(["import", "mdlm", "missing.ckpt", "--out", str(folder)]) == 2
    assert "is a folder" in _one_line(capsys)
    assert os.listdir(folder) == []


def test_import_existing_output_needs_force(tmp_path, capsys):
    sys.path.insert(0, DIT_TESTS)
    try:
        from official_files import lightning_checkpoint
    finally:
        sys.path.remove(DIT_TESTS)
    src = tmp_path / "official.ckpt"
    lightning_checkpoint(src, "dit", c=256, ell=1, b=256)
    out = tmp_path / "x.safetensors"
    out.write_bytes(b"keep me")
    base = ["import", "mdlm", str(src), "--out", str(out), "--tokenizer", "bytes", "--set", "model.length=6",
            "--set", "model.n_heads=2"]
    assert prime(base) == 2
    assert "exists; pass --force" in _one_line(capsys)
    assert out.read_bytes() == b"keep me"
    assert prime([*base, "--force"]) == 0
    assert out.stat().st_size > 1000


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_import_unwritable_folder_is_refused_first(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert prime(["import", "mdlm", "missing.ckpt", "--out", str(ro / "x.safetensors")]) == 2
        assert "is not writable" in _one_line(capsys)
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("key,hint", [("bogus.key", "allowed: model.length"), ("model.nheads", "model.n_heads?")])
def test_import_unknown_set_key(tmp_path, capsys, key, hint):
    assert prime(["import", "mdlm", "missing.ckpt", "--out", str(tmp_path / "x.safetensors"), "--set",
                  f"{key}=12"]) == 2
    err = _one_line(capsys)
    assert f"--set {key}" in err and hint in err and "prime.carry_over" in err


def test_export_refuses_a_url_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert prime(["export", "onnx", "missing.safetensors", "-o", "memory://s.onnx"]) == 2
    assert "writes a local file only" in _one_line(capsys)
    assert os.listdir(tmp_path) == []  # no folder named "memory:"


def test_export_refuses_a_folder_output(tmp_path, capsys):
    assert prime(["export", "onnx", "missing.safetensors", "-o", str(tmp_path)]) == 2
    assert "is a folder" in _one_line(capsys)


def test_export_output_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert prime(["export", "onnx", "missing.safetensors", "-o", str(tmp_path / "f" / "s.onnx")]) == 2
    assert "is a file, not a folder" in _one_line(capsys)


@pytest.mark.parametrize("opset", ["1", "17", "999"])
def test_export_opset_states_the_real_range(capsys, opset):
    pytest.importorskip("onnx")
    from export.graph import MIN_OPSET, max_opset

    with pytest.raises(SystemExit) as info:  # refused while parsing, before the checkpoint is looked at
        prime(["export", "onnx", "missing.safetensors", "--opset", opset])
    assert info.value.code == 2
    assert f"allowed: {MIN_OPSET}–{max_opset()}" in _one_line(capsys)


# ------------------------------------------------------------------------------------------------ hints
@pytest.mark.parametrize("flag,example", [("--option", "--option warp=1.5"),
                                          ("--data-option", "--data-option source=PATH")])
def test_option_without_equals_names_its_own_form(flag, example):
    from prime_core.cli.options import parse_options

    with pytest.raises(PrimeError) as info:
        parse_options(["warp"], flag)
    assert f"{flag} 'warp' must look like KEY=VALUE, e.g. {example}" == str(info.value)
    assert "section.key" not in str(info.value)


@pytest.mark.parametrize("size", ["1e12", "1000000000000", "18446744073709551616", "true", "257"])
def test_data_prepare_bad_vocab_size(tmp_path, capsys, size):
    src = tmp_path / "a.txt"
    src.write_text("some text\n" * 20)
    assert prime(["data", "prepare", str(src), "--out", str(tmp_path / "c"), "--tokenizer", "bpe",
                  "--tokenizer-option", f"vocab_size={size}", "--quiet"]) == 2
    assert "vocab_size must be a whole number in [258, 1048576]" in _one_line(capsys)
    assert not (tmp_path / "c").exists()


def test_data_prepare_huge_vocab_size_does_not_abort(tmp_path):
    """vocab_size=10¹² went to the Rust trainer, which aborted the process on its allocation (exit 134, 56
    lines on stderr); in a subprocess to see the exit status."""
    src = tmp_path / "a.txt"
    src.write_text("some text\n" * 20)
    proc = subprocess.run([sys.executable, "-m", "prime_core", "data", "prepare", str(src), "--out",
                           str(tmp_path / "c"), "--tokenizer", "bpe", "--tokenizer-option", "vocab_size=1000000000000",
                           "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "c").exists()
