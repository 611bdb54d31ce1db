"""prime import: released-checkpoint layouts at a tiny size → prime checkpoints whose logits equal the official
networks' (written out in official_files.reference_logits), for ℓ = 1, ℓ > 1 with and without carry-over, a
time-conditioned model and the AR model; hostile files refused with nothing executed and nothing written."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import pytest
import torch
from hypothesis import given, settings, strategies as st

from official_files import (lightning_checkpoint, official_carry_over_log_probs, official_encode,
                            reference_logits)
from prime_core import load_model, read_checkpoint, smallest_base
from prime_core.cli.app import main as prime

C = 256  # the "bytes" tokenizer's C, so the imported models are evaluable on a text file
HEADS, LENGTH = 2, 6


def _import(tmp_path, arch, ckpt, *extra, name="model.safetensors"):
    out = tmp_path / name
    code = prime(["import", arch, str(ckpt), "--out", str(out), "--tokenizer", "bytes", *extra])
    return code, out


def _official(tmp_path, kind="dit", ell=1, carry_over=True, tc=False, **kw):
    b = C if ell == 1 else smallest_base(C, ell)
    path = tmp_path / f"official-{kind}-{ell}-{carry_over}-{tc}.ckpt"
    weights = lightning_checkpoint(path, kind, c=C, ell=ell, b=b, heads=HEADS, length=LENGTH, carry_over=carry_over,
                                   time_conditioning=tc, **kw)
    return path, weights, b


def _tokens(n=3, seed=0):
    return torch.randint(0, C, (n, LENGTH), generator=torch.Generator().manual_seed(seed))


def _masked(model, tokens, seed=1):
    """y_t: the sub-tokens of ``tokens`` with about half of them masked (m = b)."""
    y = model.encode(tokens)
    drop = torch.rand(y.shape, generator=torch.Generator().manual_seed(seed)) < 0.5
    return torch.where(drop, torch.full_like(y, model.base), y)


# --------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("ell,carry_over,tc", [(1, True, False), (2, True, False), (2, False, False),
                                               (4, False, False), (2, True, True)])
def test_diffusion_logits_equal_the_official_network(tmp_path, ell, carry_over, tc):
    path, weights, b = _official(tmp_path, ell=ell, carry_over=carry_over, tc=tc)
    code, out = _import(tmp_path, "mdlm" if ell == 1 else "mdm-prime", path)
    assert code == 0 and out.exists()
    model, config, ckpt = load_model(str(out))
    assert (model.ell, model.base, model.num_classes, model.length) == (ell, b, C, LENGTH)
    assert config.model.head == ("carry-over" if carry_over or ell == 1 else "joint")
    assert ckpt.meta["imported"]["weights"] == "ema"
    tokens = _tokens()
    y = _masked(model, tokens)
    flat = y.reshape(y.shape[0], -1)  # the official layout [B, L·ℓ]
    assert torch.equal(model.encode(tokens).reshape(3, -1), official_encode(tokens, b, ell))  # same digit order
    t = torch.tensor([0.2, 0.5, 0.9])
    sigma = -torch.log1p(-(1 - 1e-3) * t) if tc else torch.zeros(3)  # the official σ for loglinear, or 0
    with torch.no_grad():
        ours = model(y, t)
        ref = reference_logits(weights["ema"], flat, heads=HEADS, ell=ell, sigma=sigma)
        assert ours.shape == (3, LENGTH, C)
        torch.testing.assert_close(ours, ref[..., :C], atol=1e-5, rtol=1e-5)
        log_p = model.log_probs(y, t)
        if ell == 1:  # official SUBS: the mask column gets −10⁶, softmax over the rest
            ref_lp = torch.log_softmax(ref.clone().index_fill_(-1, torch.tensor([C]), -1e6), -1)[..., :C]
            masked = y[..., 0] == model.base
            torch.testing.assert_close(log_p[masked], ref_lp[masked], atol=1e-5, rtol=1e-5)
        elif carry_over:
            ref_lp = official_carry_over_log_probs(ref, flat, C, b, ell)
            finite = torch.isfinite(ref_lp)
            assert torch.equal(finite, torch.isfinite(log_p))
            torch.testing.assert_close(log_p[finite], ref_lp[finite], atol=1e-5, rtol=1e-5)
        else:  # joint: the model's own training distribution is a C-way softmax
            torch.testing.assert_close(model.training_log_probs(y, t), torch.log_softmax(ref, -1),
                                       atol=1e-5, rtol=1e-5)


def test_model_weights_instead_of_ema(tmp_path):
    path, weights, b = _official(tmp_path, ell=2)
    code, out = _import(tmp_path, "mdm-prime", path, "--weights", "model")
    assert code == 0
    model, _, ckpt = load_model(str(out))
    assert ckpt.meta["imported"]["weights"] == "model"
    y = model.encode(_tokens())
    with torch.no_grad():
        torch.testing.assert_close(model(y), reference_logits(weights["model"], y.reshape(3, -1), heads=HEADS,
                                                              ell=2, sigma=torch.zeros(3)), atol=1e-5, rtol=1e-5)


def test_ar_logits_equal_the_official_next_token_log_probs(tmp_path):
    path, weights, _ = _official(tmp_path, kind="ar")
    code, out = _import(tmp_path, "ar", path)
    assert code == 0
    model, config, _ = load_model(str(out))
    assert config.model.backbone == "ar-official" and config.sample.sampler == "ar"
    tokens = _tokens()
    from prime_plugin_dit import ar_log_probs

    with torch.no_grad():
        ours = ar_log_probs(model, tokens)  # [B, L, C]: position i = log p(x_i | x_<i)
        ref = reference_logits(weights["ema"], tokens[:, :-1], heads=HEADS, ell=1, causal=True)
        ref[..., C] = -1000.0  # the official AR: mask column −10³, then log_softmax
        torch.testing.assert_close(ours[:, 1:], ref.log_softmax(-1)[..., :C], atol=1e-5, rtol=1e-5)
        start = reference_logits(weights["ema"], torch.full((3, 1), C), heads=HEADS, ell=1, causal=True)
        torch.testing.assert_close(ours[:, 0], start[:, 0, :C].log_softmax(-1), atol=1e-5, rtol=1e-5)


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**16))
def test_positions_select_rows_of_the_full_output(seed):
    from prime_core import BackboneSpec
    from prime_plugin_dit.official import OfficialDiT

    spec = BackboneSpec(out_dim=C, base=smallest_base(C, 2), ell=2, length=LENGTH, width=16, num_classes=C)
    net = OfficialDiT(spec, n_heads=2, n_blocks=1, cond_dim=8).eval()
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, spec.base + 1, (2, LENGTH, 2), generator=g)
    pos = torch.randint(0, 2 * LENGTH, (5,), generator=g)
    with torch.no_grad():
        torch.testing.assert_close(net(y, None, positions=pos), net(y).flatten(0, 1)[pos])


# --------------------------------------------------------------------------------------------- other sources
def test_plain_state_dict_needs_and_takes_set(tmp_path, capsys):
    _, weights, _ = _official(tmp_path, ell=2, carry_over=False)
    sd = tmp_path / "plain.pt"
    torch.save({k: v for k, v in weights["model"].items()}, sd)
    code, out = _import(tmp_path, "mdm-prime", sd)
    assert code == 2 and not out.exists()
    assert "--set model.length=" in capsys.readouterr().err
    sets = ["--set", "model.length=6", "--set", "model.n_heads=2", "--set", "prime.carry_over=false",
            "--set", "time_conditioning=false"]
    code, out = _import(tmp_path, "mdm-prime", sd, *sets)
    assert code == 0
    model, config, ckpt = load_model(str(out))
    assert config.model.head == "joint" and ckpt.meta["imported"]["kind"] == "state-dict"
    assert ckpt.meta["imported"]["weights"] == "model"  # no EMA in a plain state dict
    y = model.encode(_tokens())
    with torch.no_grad():
        torch.testing.assert_close(model(y), reference_logits(weights["model"], y.reshape(3, -1), heads=HEADS, ell=2,
                                                              sigma=torch.zeros(3)), atol=1e-5, rtol=1e-5)


def test_hugging_face_folder(tmp_path):
    from safetensors.torch import save_file

    _, weights, _ = _official(tmp_path, ell=1)
    folder = tmp_path / "mdlm-owt"
    folder.mkdir()
    # without the rotary buffer (θ_k follows from the sizes; the importer derives it)
    save_file({f"backbone.{k}": v.contiguous() for k, v in weights["model"].items() if k != "rotary_emb.inv_freq"},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "mdlm", "vocab_size": C + 1, "model_length": LENGTH, "hidden_dim": 16, "cond_dim": 8,
        "n_blocks": 2, "n_heads": HEADS, "dropout": 0.1, "time_conditioning": False}))
    code, out = _import(tmp_path, "mdlm", folder)
    assert code == 0
    model, _, ckpt = load_model(str(out))
    assert ckpt.meta["imported"]["kind"] == "hf-folder"
    y = model.encode(_tokens())
    with torch.no_grad():
        torch.testing.assert_close(model(y), reference_logits(weights["model"], y.reshape(3, -1), heads=HEADS, ell=1,
                                                              sigma=torch.zeros(3))[..., :C], atol=1e-5, rtol=1e-5)


def test_metadata_names_the_source_and_its_sha256(tmp_path):
    import hashlib

    path, _, _ = _official(tmp_path, ell=3, d=24)
    code, out = _import(tmp_path, "mdm-prime", path)
    assert code == 0
    imported = read_checkpoint(str(out)).meta["imported"]
    assert imported["source"] == path.name and imported["importer"].startswith("prime-plugin-dit")
    assert imported["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert imported["hyper_parameters"]["prime.target_length"] == 3
    assert imported["official"]["base"] == smallest_base(C, 3)


@pytest.mark.parametrize("arch,ell,kind,needle", [("mdlm", 2, "dit", "use mdm-prime"),
                                                  ("mdm-prime", 1, "dit", "use mdlm"),
                                                  ("ar", 1, "dit", "prime import mdlm"),
                                                  ("mdlm", 1, "ar", "prime import ar")])
def test_wrong_kind_is_one_line(tmp_path, capsys, arch, ell, kind, needle):
    path, _, _ = _official(tmp_path, kind=kind, ell=ell)
    code, out = _import(tmp_path, arch, path)
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists() and needle in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------------------------- hostile files
class Payload:
    """Unpickling this calls ``func(*args)`` — what a malicious checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _hostile_ckpt(tmp_path, payload):
    path, _, _ = _official(tmp_path, ell=2, extra_hparams={"evil": payload})
    return path


def _refused(tmp_path, capsys, path, needle):
    code, out = _import(tmp_path, "mdm-prime", path)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and needle in err
    assert not out.exists() and not any(p.name.startswith("model.safetensors") for p in tmp_path.iterdir())
    return err


def test_reduce_payload_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = _hostile_ckpt(tmp_path, Payload(os.system, f"touch {marker}"))
    err = _refused(tmp_path, capsys, path, "system")
    assert "nothing in it was executed" in err
    assert not marker.exists()


def test_callable_writing_a_file_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned.txt"
    import builtins

    path = _hostile_ckpt(tmp_path, Payload(builtins.exec, f"open({str(marker)!r}, 'w').write('x')"))
    _refused(tmp_path, capsys, path, "builtins.exec")
    assert not marker.exists()


def write_marker(path):
    with open(path, "w") as fh:
        fh.write("ran")


def test_allowed_name_is_only_recorded_never_called(tmp_path):
    """A GLOBAL inside an allowed namespace becomes an inert record: REDUCE does not call the real function."""
    marker = tmp_path / "called"
    import types
    import sys

    mod = types.ModuleType("omegaconf.payload")
    write_marker.__module__ = "omegaconf.payload"
    mod.write_marker = write_marker
    sys.modules["omegaconf.payload"] = mod
    try:
        path = _hostile_ckpt(tmp_path, Payload(write_marker, str(marker)))
    finally:
        del sys.modules["omegaconf.payload"]
        write_marker.__module__ = __name__
    code, out = _import(tmp_path, "mdm-prime", path)
    assert code == 0 and out.exists() and not marker.exists()


def test_unexpected_global_type_is_named(tmp_path, capsys):
    from fractions import Fraction

    path = _hostile_ckpt(tmp_path, Fraction(1, 3))
    _refused(tmp_path, capsys, path, "fractions.Fraction")


def test_truncated_file_is_refused(tmp_path, capsys):
    path, _, _ = _official(tmp_path, ell=2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _refused(tmp_path, capsys, path, "official")


def test_truncated_storage_is_refused(tmp_path, capsys):
    """A zip whose tensor record is shorter than declared (re-zipped so the archive itself is valid)."""
    path, _, _ = _official(tmp_path, ell=2)
    bad = tmp_path / "short.ckpt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[:-4] if "/data/" in info.filename and len(data) > 4 else data)
    _refused(tmp_path, capsys, bad, "bytes")


@pytest.mark.parametrize("content", [b"not a checkpoint at all", pickle.dumps({"state_dict": {}}),
                                     b"PK\x03\x04garbage"])
def test_non_zip_file_is_refused(tmp_path, capsys, content):
    path = tmp_path / "weird.ckpt"
    path.write_bytes(content)
    _refused(tmp_path, capsys, path, "weird.ckpt")


# --------------------------------------------------------------------------------------------- use
def _json_tokens(capsys, argv):
    capsys.readouterr()
    assert prime(argv) == 0
    return json.loads(capsys.readouterr().out)["tokens"]


def test_imported_models_sample_and_report_valid_bounds(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("It is a truth universally acknowledged, that a single man in possession of a good fortune.\n" * 30)
    path, _, _ = _official(tmp_path, ell=2)
    assert _import(tmp_path, "mdm-prime", path)[0] == 0
    ar_path, _, _ = _official(tmp_path, kind="ar")
    assert _import(tmp_path, "ar", ar_path, name="ar.safetensors")[0] == 0
    for name in ("model.safetensors", "ar.safetensors"):
        tokens = _json_tokens(capsys, ["sample", str(tmp_path / name), "-n", "2", "--steps", "3", "--json",
                                       "--quiet"])
        assert len(tokens) == 2 and all(len(row) == LENGTH and all(0 <= t < C for t in row) for row in tokens)
    capsys.readouterr()
    assert prime(["eval", str(tmp_path / "model.safetensors"), "--data-option", f"source={text}",
                  "--max-sequences", "2", "--mc", "1", "--steps", "3", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["metrics"]}
    assert rows["nelbo"]["is_bound"] and rows["tstep-nelbo"]["is_bound"] and "perplexity_upper_bound" in rows["nelbo"]
    assert not rows["joint-loss"]["is_bound"] and "perplexity_upper_bound" not in rows["joint-loss"]
    assert "not a bound" in rows["joint-loss"]["label"]
    assert prime(["eval", str(tmp_path / "model.safetensors"), "--data", str(text), "--mc", "1", "--steps", "3",
                  "--json"]) == 0  # zero-shot on the file: the valid bounds only
    out = capsys.readouterr().out
    assert "nelbo" in out and "perplexity_upper_bound" in out and "joint" not in out
    assert prime(["eval", str(tmp_path / "ar.safetensors"), "--data-option", f"source={text}",
                  "--max-sequences", "2", "--mc", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["metrics"]
    assert [r["name"] for r in rows] == ["ar-nll"] and rows[0]["is_bound"]


@pytest.mark.slow
def test_imported_model_exports_to_onnx_with_the_same_samples(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("export.onnx")
    path, _, _ = _official(tmp_path, ell=2)
    _, out = _import(tmp_path, "mdm-prime", path)
    step = tmp_path / "step.onnx"
    assert prime(["export", "onnx", str(out), "-o", str(step)]) == 0 and step.exists()
    argv = ["sample", str(out), "-n", "3", "--steps", "4", "--seed", "5", "--json", "--quiet"]
    eager = _json_tokens(capsys, argv)
    assert _json_tokens(capsys, [*argv, "--runtime", "onnxruntime", "--step-model", str(step)]) == eager


# --------------------------------------------------------------------------------------------- the reader
_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                    st.text(max_size=8), st.binary(max_size=8))
_trees = st.recursive(_leaves, lambda kids: st.one_of(st.lists(kids, max_size=3), st.tuples(kids, kids),
                                                      st.dictionaries(st.text(max_size=4), kids, max_size=3)),
                      max_leaves=10)


@settings(max_examples=25, deadline=None)
@given(tree=_trees, shape=st.lists(st.integers(0, 3), max_size=3),
       dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.int64, torch.bool, torch.uint8]))
def test_reader_rebuilds_plain_data_and_tensors(tmp_path_factory, tree, shape, dtype):
    from prime_plugin_dit.safeload import read_torch_file

    base = torch.arange(24).reshape(4, 6).to(dtype)
    tensors = {"t": torch.zeros(shape, dtype=dtype), "view": base[1:, ::2], "param": torch.nn.Parameter(base.float())}
    path = tmp_path_factory.mktemp("reader") / "f.pt"
    torch.save({"tree": tree, **tensors}, path)
    obj, _ = read_torch_file(str(path))
    assert obj["tree"] == tree
    for name, t in tensors.items():
        assert torch.equal(obj[name].load(), t.detach())


def test_cycles_in_records_become_a_marker(tmp_path):
    from prime_plugin_dit.safeload import Record, to_plain

    rec = type("Thing", (Record,), {"qualname": "transformers.Thing"})()
    rec.state = {"self": rec, "n": 1}
    assert to_plain(rec) == {"__type__": "transformers.Thing", "args": [], "state": {"self": "<cycle>", "n": 1}}
