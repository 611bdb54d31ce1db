"""`prime import bd3lm`: BD3-LM's Hugging-Face folders (config.json + model.safetensors) and Lightning .ckpt files,
read without running pickled code, checked against an independent forward of the official architecture written
here from the paper and kuleshov-group/bd3lms (DIT on [x_t ; x_0], the three-part block-diffusion mask M_BD | M_OBC
| M_BC, rotary on each half at positions 0 … n−1, adaLN with σ = 0) at a tiny size with random weights."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from official_files import _ln, _timestep, lightning_checkpoint, official_shapes, random_weights
from prime_core import load_model
from prime_core.cli import main

C, D, HEADS, BLOCKS, COND, LENGTH, BLOCK = 11, 16, 2, 2, 8, 8, 2


def bd3lm_mask(n: int, block: int) -> torch.Tensor:
    """BD3-LM's training mask over 2n positions, from its definition: block-diagonal within each half's blocks
    (M_BD), x_t block attends to x_0 blocks strictly before it (M_OBC), x_0 block-causal (M_BC)."""
    q, k = torch.arange(2 * n)[:, None], torch.arange(2 * n)[None, :]
    q0, k0 = q >= n, k >= n
    bq, bk = torch.where(q0, q - n, q) // block, torch.where(k0, k - n, k) // block
    return ((bq == bk) & (q0 == k0)) | ((bq > bk) & k0 & ~q0) | ((bq >= bk) & k0 & q0)


def _rot(x, inv_freq):
    n = x.shape[1]
    freqs = torch.einsum("i,j->ij", torch.arange(n).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def bd3lm_logits(w: dict, x_t: torch.Tensor, x_0: torch.Tensor, block: int) -> torch.Tensor:
    """The official DITBackbone(cross_attn=True) training forward: [B, n] + [B, n] token ids → [B, n, C + 1]."""
    n, bsz = x_t.shape[1], x_t.shape[0]
    x = w["vocab_embed.embedding"][torch.cat([x_t, x_0], dim=1)]
    c = F.silu(_timestep(torch.zeros(bsz), w))
    mask = bd3lm_mask(n, block)
    for i in range(len({k.split(".")[1] for k in w if k.startswith("blocks.")})):
        p = lambda name: w[f"blocks.{i}.{name}"]  # noqa: E731
        sh1, sc1, g1, sh2, sc2, g2 = (c @ p("adaLN_modulation.weight").T + p("adaLN_modulation.bias"))[:, None].chunk(6, 2)
        h = _ln(x, p("norm1.weight")) * (1 + sc1) + sh1
        qkv = (h @ p("attn_qkv.weight").T).reshape(bsz, 2 * n, 3, HEADS, -1)
        q, k, v = qkv.unbind(2)
        q = torch.cat([_rot(q[:, :n], w["rotary_emb.inv_freq"]), _rot(q[:, n:], w["rotary_emb.inv_freq"])], 1)
        k = torch.cat([_rot(k[:, :n], w["rotary_emb.inv_freq"]), _rot(k[:, n:], w["rotary_emb.inv_freq"])], 1)
        scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(q.shape[-1])
        a = torch.einsum("bhij,bjhd->bihd", scores.masked_fill(~mask, float("-inf")).softmax(-1), v).flatten(2)
        x = x + g1 * (a @ p("attn_out.weight").T)
        h = _ln(x, p("norm2.weight")) * (1 + sc2) + sh2
        x = x + g2 * (F.gelu(h @ p("mlp.0.weight").T + p("mlp.0.bias"), approximate="tanh") @ p("mlp.2.weight").T
                      + p("mlp.2.bias"))
    shift, scale = (c @ w["output_layer.adaLN_modulation.weight"].T
                    + w["output_layer.adaLN_modulation.bias"])[:, None].chunk(2, dim=2)
    h = _ln(x[:, :n], w["output_layer.norm_final.weight"]) * (1 + scale) + shift
    return h @ w["output_layer.linear.weight"].T + w["output_layer.linear.bias"]


def hf_folder(path, **config):
    path.mkdir()
    weights = random_weights(official_shapes("mdlm", C, 1, C, D, BLOCKS, COND), 3, HEADS, D)
    state = {f"backbone.{k}": v.contiguous() for k, v in weights.items()}
    state["sampling_eps_min"], state["sampling_eps_max"] = torch.tensor(0.3), torch.tensor(0.8)  # BD3LM's buffers
    save_file(state, str(path / "model.safetensors"))
    cfg = {"model_type": "bd3lm", "block_size": BLOCK, "vocab_size": C + 1, "model_length": LENGTH,
           "cross_attn": True, "adaln": True, "attn_backend": "flex", "causal": False, "hidden_dim": D,
           "cond_dim": COND, "n_blocks": BLOCKS, "n_heads": HEADS, "dropout": 0.1, "time_conditioning": False,
           "var_min": True, **config}
    (path / "config.json").write_text(json.dumps(cfg))
    return weights


def _import(src, out, *extra):
    return main(["import", "bd3lm", str(src), "--out", str(out), "--tokenizer", "bytes", *extra])


def test_hf_folder_imports_with_parity_to_the_official_forward(tmp_path, monkeypatch):
    import prime_plugin_dit.importer as importer

    monkeypatch.setitem(importer.TOKENIZER_SIZES, "bytes", C)  # a tokenizer of the tiny vocabulary
    weights = hf_folder(tmp_path / "bd3lm")
    assert _import(tmp_path / "bd3lm", tmp_path / "m.safetensors", "--weights", "model") == 0
    model, config, _ = load_model(str(tmp_path / "m.safetensors"))
    assert config.model.block_size == BLOCK and config.model.backbone == "dit-official"
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, C, (3, LENGTH), generator=g)
    xt = torch.where(torch.rand(3, LENGTH, generator=g) < 0.5, C, x0)  # official mask id C
    expected = bd3lm_logits(weights, xt, x0, BLOCK)[..., :C]
    y_t = model.map.encode(x0).masked_fill((xt == C).unsqueeze(-1), model.mask_id)
    got = model.backbone.block_forward(y_t, model.map.encode(x0), BLOCK)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_lightning_checkpoint_imports(tmp_path, monkeypatch):
    import prime_plugin_dit.importer as importer

    monkeypatch.setitem(importer.TOKENIZER_SIZES, "bytes", C)
    lightning_checkpoint(tmp_path / "bd3lm.ckpt", "mdlm", c=C, ell=1, b=C, d=D, heads=HEADS, blocks=BLOCKS, cond=COND,
                         length=LENGTH)
    assert _import(tmp_path / "bd3lm.ckpt", tmp_path / "m.safetensors", "--set", "block_size=4") == 0
    _, config, _ = load_model(str(tmp_path / "m.safetensors"))
    assert config.model.block_size == 4


@pytest.mark.parametrize("config,message", [({"block_size": 3}, "does not divide model_length=8"),
                                            ({"cross_attn": False}, "cross_attn = false")])
def test_bad_bd3lm_folders_are_one_line_exit_2_nothing_written(tmp_path, capsys, monkeypatch, config, message):
    import prime_plugin_dit.importer as importer

    monkeypatch.setitem(importer.TOKENIZER_SIZES, "bytes", C)
    hf_folder(tmp_path / "bd3lm", **config)
    assert _import(tmp_path / "bd3lm", tmp_path / "m.safetensors") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.safetensors").exists()


def test_a_bd3lm_folder_is_not_imported_as_mdlm(tmp_path, capsys, monkeypatch):
    import prime_plugin_dit.importer as importer

    monkeypatch.setitem(importer.TOKENIZER_SIZES, "bytes", C)
    hf_folder(tmp_path / "bd3lm")
    assert main(["import", "mdlm", str(tmp_path / "bd3lm"), "--out", str(tmp_path / "m.safetensors"),
                 "--tokenizer", "bytes"]) == 2
    assert "use 'prime import bd3lm'" in capsys.readouterr().err
