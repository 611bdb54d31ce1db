"""Issue 14, checkpoints: hostile or broken checkpoint files and metadata are refused in one line, read no more
bytes than they declare, allocate nothing their header or config cannot back, and name no file prime reads."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time

import attrs
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

import prime_core.runs.build
import prime_core.runs.checkpoint as ckpt_mod
from prime_core import CheckpointError, Config, ConfigError, Dataset, DataConfig, ModelConfig, PrimeError, hookimpl
from prime_core import build_model, load_model, save_model
from prime_core.runs.build import dataset_for_checkpoint
from prime_core.builtin.mlp import MLPBackbone
from prime_core.runs.checkpoint import read_checkpoint, read_checkpoint_file

MODEL = ModelConfig(num_classes=6, length=3, ell=2, width=8, backbone_options={"hidden": 32, "depth": 1})
CONFIG = Config(data=DataConfig(dataset="toy-markov", options={"num_classes": 6, "length": 3, "num_eval": 16}),
                model=MODEL)


# ------------------------------------------------------------------------------------------------ helpers
def write_ckpt(path, registry, config=CONFIG, *, meta_patch=None, tensors_patch=None) -> str:
    """A tiny valid checkpoint at ``path``; ``meta_patch`` / ``tensors_patch`` edit what is written."""
    torch.manual_seed(0)
    model = build_model(config, registry)
    url = save_model(str(path), model, config, registry=registry)
    if meta_patch or tensors_patch:
        ck = read_checkpoint(url)
        meta = {k: v for k, v in ck.meta.items() if k not in ("format", "format_version")}
        tensors = dict(ck.tensors)
        (tensors_patch or (lambda t: None))(tensors)
        (meta_patch or (lambda m: None))(meta)
        ckpt_mod.save_checkpoint(url, tensors, meta)
    return url


def raw_file(path, header: dict, data: bytes = b"", *, length: int | None = None) -> str:
    """A file with a hand-made safetensors header (and a chosen 8-byte length field)."""
    h = json.dumps(header).encode()
    path.write_bytes((len(h) if length is None else length).to_bytes(8, "little") + h + data)
    return str(path)


def prime_meta(**overrides) -> dict:
    return {"prime": json.dumps({"format": "prime-checkpoint", "format_version": 1, **overrides})}


class CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes handed out and refuses read-all calls (read() / read(-1))."""

    def __init__(self, data: bytes):
        self._buf, self.bytes_read = io.BytesIO(data), 0

    def read(self, n=-1):
        if n is None or n < 0:
            raise AssertionError("the checkpoint reader asked for the whole file")
        chunk = self._buf.read(n)
        self.bytes_read += len(chunk)
        return chunk

    def readable(self):
        return True


@pytest.fixture
def counted(monkeypatch):
    """Wrap every checkpoint file the reader opens; returns the list of wrappers."""
    opened = []
    real = ckpt_mod._open

    def spy(fs, path):
        with real(fs, path) as fh:
            first = fh.read(1 << 16)  # small files only: the wrapper serves what the reader asks for
        wrapper = CountingFile(first)
        opened.append(wrapper)
        return wrapper

    monkeypatch.setattr(ckpt_mod, "_open", spy)
    return opened


def prime_cli(*args, cwd=None):
    env = dict(os.environ, PRIME_LOAD_PLUGINS="")
    return subprocess.run([sys.executable, "-m", "prime_core", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def assert_one_line_error(out, pattern):
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("prime: error:"), out.stderr
    assert pattern in lines[0], lines[0]


# ------------------------------------------------------------------------------------------------ the reader
def test_dev_zero_is_refused_without_reading():
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_checkpoint("/dev/zero")


def test_sparse_100_gb_file_is_refused_quickly(tmp_path, counted):
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as fh:
        fh.truncate(100 * 2**30)  # sparse: costs no disk
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="header length 0"):
        read_checkpoint(str(path))
    assert time.perf_counter() - t0 < 5 and counted[0].bytes_read == 8


def test_valid_checkpoint_extended_to_100_gb_is_refused(tmp_path, registry, counted):
    url = write_ckpt(tmp_path / "c.safetensors", registry)
    real = os.path.getsize(url)
    os.truncate(url, 100 * 2**30)
    with pytest.raises(CheckpointError, match=f"has {100 * 2**30} bytes, its header declares {real}"):
        read_checkpoint(url)
    n = int.from_bytes(open(url, "rb").read(8), "little")
    assert counted[0].bytes_read == 8 + n  # the header only, never a tensor byte


def test_huge_header_length_is_refused_before_reading_it(tmp_path, counted):
    url = raw_file(tmp_path / "h.safetensors", {}, length=2**62)
    with pytest.raises(CheckpointError, match="header length"):
        read_checkpoint(url)
    assert counted[0].bytes_read == 8


def test_deeply_nested_header_is_refused(tmp_path):
    url = str(tmp_path / "n.safetensors")
    raw = b"[" * 200_000
    open(url, "wb").write(len(raw).to_bytes(8, "little") + raw)
    with pytest.raises(CheckpointError, match="header is not JSON"):
        read_checkpoint(url)


def test_trailing_bytes_and_every_truncation_are_refused(tmp_path, registry, counted):
    url = write_ckpt(tmp_path / "c.safetensors", registry)
    good = open(url, "rb").read()
    (tmp_path / "t.safetensors").write_bytes(good + b"\0")
    with pytest.raises(CheckpointError, match="trailing data"):
        read_checkpoint(str(tmp_path / "t.safetensors"))
    assert counted[0].bytes_read == 8 + int.from_bytes(good[:8], "little")  # refused after the header
    for cut in sorted({0, 3, 7, 8, 9, 20, len(good) // 2, len(good) - 1}):
        with pytest.raises(CheckpointError):
            read_checkpoint_file(io.BytesIO(good[:cut]), cut, f"cut at {cut}")


@pytest.mark.parametrize("header,pattern", [
    ([1, 2], "header is a JSON list"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, "4 bytes declared, shape [2] of F32 needs 8"),
    ({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, "dtype 'F99'"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, "shape [-1]"),
    ({"w": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, "shape [True]"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, "data_offsets [4, 0]"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, "starts at byte 4, expected 0"),
    ({"w": {"dtype": "F32", "shape": [1]}}, "exactly dtype, shape and data_offsets"),
    ({"__metadata__": {"prime": "[1, 2]"}}, "prime metadata is a JSON list"),
    ({"__metadata__": {"prime": '"text"'}}, "prime metadata is a JSON str"),
    ({"__metadata__": {"prime": "{not json"}}, "prime metadata is not JSON"),
    ({"__metadata__": {"prime": "[" * 100_000}}, "prime metadata is not JSON"),
    ({"__metadata__": prime_meta(format_version="1")}, "format_version must be an integer ≥ 1, got '1'"),
    ({"__metadata__": prime_meta(format_version=1.0)}, "format_version must be an integer ≥ 1, got 1.0"),
    ({"__metadata__": prime_meta(format_version=True)}, "format_version must be an integer ≥ 1, got True"),
    ({"__metadata__": prime_meta(format_version=-3)}, "format_version must be an integer ≥ 1, got -3"),
])
def test_malformed_headers_are_one_line_checkpoint_errors(tmp_path, header, pattern):
    data = b"\0" * 8 if "w" in header else b""
    with pytest.raises(CheckpointError, match=None) as info:
        read_checkpoint(raw_file(tmp_path / "x.safetensors", header, data))
    assert pattern in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("protocol,package", [("s3", "s3fs"), ("gs", "gcsfs")])
def test_missing_fsspec_package_is_named(protocol, package):
    pytest.importorskip("fsspec")
    try:
        __import__(package)
        pytest.skip(f"{package} is installed here")
    except ImportError:
        pass
    with pytest.raises(CheckpointError, match=f"needs the {package} package \\(pip install {package}\\)"):
        read_checkpoint(f"{protocol}://bucket/run/checkpoint.safetensors")


def test_reader_refuses_tensor_data_larger_than_memory(tmp_path, registry, monkeypatch):
    url = write_ckpt(tmp_path / "c.safetensors", registry)
    monkeypatch.setattr(ckpt_mod, "available_memory", lambda: 16)
    with pytest.raises(CheckpointError, match="more than the 0.0 GiB of memory available"):
        read_checkpoint(url)


# ------------------------------------------------------------------------------------------------ fuzzing
def _valid_bytes() -> bytes:
    buf = io.BytesIO()
    tensors = {"model/a": torch.arange(6, dtype=torch.float32).view(2, 3), "model/b": torch.ones(2, dtype=torch.int64)}
    buf.write(st_save(tensors, metadata=prime_meta(config={"model": {}})))
    return buf.getvalue()


VALID = _valid_bytes()
_entry = st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "I64", "U8", "BF16", "X", 3]),
                                "shape": st.lists(st.integers(-2, 5), max_size=3) | st.just("s"),
                                "data_offsets": st.lists(st.integers(-1, 64), min_size=0, max_size=3)})
_header = st.dictionaries(st.text(max_size=8), _entry | st.integers() | st.none(), max_size=4)


def _check_read(data: bytes, declared_cap: int | None = None) -> None:
    """Either a Checkpoint or a PrimeError; never another exception, a read-all or more bytes than the file has."""
    fh = CountingFile(data)
    try:
        read_checkpoint_file(fh, len(data), "fuzz")
    except PrimeError as exc:
        assert "\n" not in str(exc)
    assert fh.bytes_read <= len(data)
    if declared_cap is not None:
        assert fh.bytes_read <= declared_cap


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    _check_read(data)


@settings(max_examples=60, deadline=None)
@given(_header, st.binary(max_size=64), st.integers(-4, 4))
def test_fuzz_random_json_headers(header, data, skew):
    h = json.dumps(header).encode()
    n = max(len(h) + skew, 0)
    blob = n.to_bytes(8, "little") + h + data
    _check_read(blob, declared_cap=8 + max(n, 0) + len(data))


@settings(max_examples=80, deadline=None)
@given(st.integers(0, len(VALID)), st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 7)),
                                           max_size=3))
def test_fuzz_truncations_and_bit_flips_of_a_valid_checkpoint(cut, flips):
    data = bytearray(VALID)
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    _check_read(bytes(data[:cut]))


def test_the_fuzzed_original_is_valid():
    ck = read_checkpoint_file(CountingFile(VALID), len(VALID))
    assert torch.equal(ck.tensors["model/a"], torch.arange(6, dtype=torch.float32).view(2, 3))


# ------------------------------------------------------------------------------------------------ load_model
@pytest.mark.parametrize("config,pattern", [
    ([1, 2], "no valid config: expected a JSON object of sections, got list"),
    ("model", "no valid config: expected a JSON object of sections, got str"),
])
def test_config_that_is_not_a_config_is_refused(tmp_path, registry, config, pattern):
    url = write_ckpt(tmp_path / "c.safetensors", registry, meta_patch=lambda m: m.update(config=config))
    with pytest.raises(CheckpointError, match=pattern):
        load_model(url, registry)


@pytest.mark.parametrize("key,value", [("width", 2**40), ("length", 10**9), ("num_classes", 10**12)])
def test_huge_sizes_in_metadata_are_refused_before_allocation(tmp_path, registry, key, value):
    """The model is built on the meta device first: a huge config fails the shape comparison, allocating nothing."""
    def patch(meta):
        meta["config"]["model"][key] = value
        if key in meta:  # consistent top-level sizes, so only the shape comparison can catch it
            meta[key] = value

    url = write_ckpt(tmp_path / "c.safetensors", registry, meta_patch=patch)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="does not match its config's model: tensor model/|metadata base="):
        load_model(url, registry)
    assert time.perf_counter() - t0 < 10


def test_model_larger_than_memory_is_refused(registry, monkeypatch):
    """Parameters and buffers of the meta-device model are compared with the memory available."""
    with torch.device("meta"):
        skeleton = build_model(CONFIG, registry)
    monkeypatch.setattr(ckpt_mod, "available_memory", lambda: 64)
    with pytest.raises(CheckpointError, match="describes a model of 0.0 GiB, more than the 0.0 GiB"):
        prime_core.runs.build._check_model_memory(skeleton, "c.safetensors")


@pytest.mark.parametrize("key", ["num_classes", "ell", "base", "length"])
def test_top_level_sizes_must_match_the_config(tmp_path, registry, key):
    url = write_ckpt(tmp_path / "c.safetensors", registry, meta_patch=lambda m: m.update({key: m[key] + 1}))
    with pytest.raises(CheckpointError, match=f"metadata {key}="):
        load_model(url, registry)


def test_state_dict_mismatch_names_the_tensor_and_both_shapes(tmp_path, registry):
    url = write_ckpt(tmp_path / "c.safetensors", registry)
    name = sorted(k for k in read_checkpoint(url).tensors if k.startswith("model/"))[0]
    shape = tuple(read_checkpoint(url).tensors[name].shape)

    def grow(tensors):
        t = tensors[name]
        tensors[name] = torch.zeros(t.shape[0] + 1, *t.shape[1:], dtype=t.dtype)

    write_ckpt(tmp_path / "c.safetensors", registry, tensors_patch=grow)
    bigger = [shape[0] + 1, *shape[1:]]
    with pytest.raises(CheckpointError, match=re.escape(f"tensor {name} has shape {bigger} in the file, the model "
                                                        f"expects {list(shape)}")):
        load_model(url, registry)

    def drop(tensors):
        del tensors[name]

    write_ckpt(tmp_path / "c.safetensors", registry, tensors_patch=drop)
    with pytest.raises(CheckpointError, match=f"tensor {name} has shape absent in the file"):
        load_model(url, registry)


def test_ema_weights_that_are_not_there_are_an_error(tmp_path, registry):
    url = write_ckpt(tmp_path / "c.safetensors", registry)
    with pytest.raises(CheckpointError, match="has no 'ema' weights; it holds: model"):
        load_model(url, registry, weights="ema")


# ------------------------------------------------------------------------------------------------ CLI rows
@pytest.fixture(scope="module")
def cli_ckpt(tmp_path_factory):
    from prime_core.plugin.default import new_registry

    return write_ckpt(tmp_path_factory.mktemp("ck") / "c.safetensors", new_registry(load_plugins=False))


@pytest.mark.parametrize("make,pattern", [
    (lambda p, c: "/dev/zero", "not a regular file"),
    (lambda p, c: (open(p, "wb").truncate(100 * 2**30), str(p))[1], "header length 0"),
    (lambda p, c: raw_file(p, {"__metadata__": {"prime": "[1]"}}), "prime metadata is a JSON list"),
    (lambda p, c: raw_file(p, {"__metadata__": prime_meta(format_version="x")}), "format_version must be"),
    (lambda p, c: "s3://bucket/c.safetensors", "pip install s3fs"),
])
@pytest.mark.parametrize("command", ["eval", "sample"])
def test_cli_one_line_for_bad_checkpoint_files(tmp_path, cli_ckpt, make, pattern, command, capsys):
    """The whole matrix through `prime_core.cli.app.main` (in process, fast); the subprocess test below checks the
    real exit code and stderr of a few rows."""
    from prime_core.cli.app import main

    if "s3fs" in pattern:
        try:
            import s3fs  # noqa: F401
            pytest.skip("s3fs is installed here")
        except ImportError:
            pass
    url = make(tmp_path / "bad.safetensors", cli_ckpt)
    extra = ["--out", str(tmp_path / "o")] if command == "sample" else []
    assert main([command, url, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prime: error:") and pattern in err[0], err
    assert not (tmp_path / "o").exists()


def test_cli_subprocess_rows(tmp_path, cli_ckpt, registry):
    """Exit code 2, one stderr line, nothing written: /dev/zero, --weights ema without EMA, a config that is a
    list, a huge width in the metadata."""
    assert_one_line_error(prime_cli("eval", "/dev/zero"), "not a regular file")
    out = prime_cli("sample", cli_ckpt, "--weights", "ema", "--out", str(tmp_path / "o"))
    assert_one_line_error(out, "has no 'ema' weights; it holds: model")
    assert not (tmp_path / "o").exists()
    url = write_ckpt(tmp_path / "l.safetensors", registry, meta_patch=lambda m: m.update(config=[1]))
    assert_one_line_error(prime_cli("eval", url), "no valid config")

    def huge(meta):
        meta["config"]["model"]["width"] = 2**40

    url = write_ckpt(tmp_path / "w.safetensors", registry, meta_patch=huge)
    assert_one_line_error(prime_cli("sample", url), "does not match its config's model: tensor model/")


# ------------------------------------------------------------------------------------------------ inert metadata
class Recorder:
    reads: list = []


class LocatedData(Dataset):
    """A throwaway data set with a read location (source), a cache (cache_dir) and a built-in name ("builtin")."""

    name = "located"
    location_options = ("source", "cache_dir")
    cache_options = ("cache_dir",)

    def __init__(self, source: str = "builtin", cache_dir: str | None = None, length: int = 3):
        Recorder.reads.append(("init", source, cache_dir))
        self.source, self.cache_dir, self.num_classes, self.length = source, cache_dir, 6, length
        self.restored = None

    def load_checkpoint_meta(self, meta):
        self.restored = meta

    def split(self, name):
        Recorder.reads.append(("read", self.source))
        return torch.zeros(4, self.length, dtype=torch.long)


class LocatedPlugin:
    @hookimpl
    def register_datasets(self, register):
        register("located", LocatedData)


def _located_config(**options):
    return Config(data=DataConfig(dataset="located", options=options), model=MODEL)


def test_stored_locations_are_never_used(registered):
    reg = registered(LocatedPlugin())
    Recorder.reads.clear()
    cfg = _located_config(source="https://example.invalid/corpus.txt", cache_dir="/etc/prime-cache")
    with pytest.raises(ConfigError, match="pass --data-option source=PATH"):
        dataset_for_checkpoint(cfg, {}, registry=reg)
    assert Recorder.reads == []  # refused before the data set was even built
    ds = dataset_for_checkpoint(cfg, {"x": 1}, locations={"source": "/mine.txt"}, registry=reg)
    assert (ds.source, ds.cache_dir, ds.restored) == ("/mine.txt", None, {"x": 1})  # cache: the user's default
    ds = dataset_for_checkpoint(cfg, None, need_data=False, registry=reg)  # decoding only: nothing is read
    assert ds.source == "builtin" and ds.restored == {} and ("read", "builtin") not in Recorder.reads


def test_default_valued_location_is_a_name_and_kept(registered):
    reg = registered(LocatedPlugin())
    ds = dataset_for_checkpoint(_located_config(source="builtin", length=3), {}, registry=reg)
    assert ds.source == "builtin" and ds.length == 3


def test_data_option_accepts_only_locations(registered):
    reg = registered(LocatedPlugin())
    with pytest.raises(ConfigError, match="takes only its locations from the command line \\(source, cache_dir\\)"):
        dataset_for_checkpoint(_located_config(), {}, locations={"length": 9}, registry=reg)


def test_data_metadata_must_be_an_object(registered):
    reg = registered(LocatedPlugin())
    with pytest.raises(CheckpointError, match="'data' must be a JSON object, got list"):
        dataset_for_checkpoint(_located_config(), [1], registry=reg)


class RealTensorBackbone(MLPBackbone):
    """A backbone whose constructor needs real tensor values, so it cannot be built on the meta device."""

    def __init__(self, spec, **options):
        super().__init__(spec, **options)
        self.scale = float(torch.ones(1).sum())


class RealTensorPlugin:
    @hookimpl
    def register_backbones(self, register):
        register("real-tensor-mlp", RealTensorBackbone)


def test_component_that_needs_real_tensors_still_loads_and_is_checked(tmp_path, registered):
    reg = registered(RealTensorPlugin())
    cfg = Config(model=attrs.evolve(MODEL, backbone="real-tensor-mlp"))
    url = write_ckpt(tmp_path / "c.safetensors", reg, cfg)
    with pytest.raises((RuntimeError, NotImplementedError, ConfigError), match="meta"), torch.device("meta"):
        build_model(cfg, reg)
    model, _, _ = load_model(url, reg)
    assert model.backbone.scale == 1.0
    write_ckpt(tmp_path / "c.safetensors", reg, cfg, meta_patch=lambda m: m.update(num_classes=7))
    with pytest.raises(CheckpointError, match="metadata num_classes=7"):
        load_model(url, reg)
