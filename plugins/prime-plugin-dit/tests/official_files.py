"""Test helpers: files in the released checkpoints' layout, and the official networks' forward written out.

`lightning_checkpoint` writes a real ``torch.save`` Lightning-style dict: ``state_dict`` (official names under
``backbone.``), ``ema`` {shadow_params, decay, num_updates}, ``hyper_parameters`` holding objects of stand-in
classes registered under the real module names (``omegaconf.dictconfig.DictConfig``, ``omegaconf.nodes.AnyNode``,
``omegaconf.base.ContainerMetadata`` / ``Metadata``, ``typing.Any`` refs, an enum, Lightning's
``AttributeDict``, a ``transformers`` tokenizer), and Lightning bookkeeping (loops, callbacks, optimizer states).
The stand-in modules live in ``sys.modules`` only while saving.

`reference_logits` is the official forward (text/models/dit.py DIT / PerceiverDIT, autoregressive.py AR) on a
raw state dict, written from those definitions — not prime's code: sub-token ids [B, L·ℓ] → logits.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import math
import re
import sys
import types
import typing

import torch
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------- weights
def official_shapes(kind: str, c: int, ell: int, b: int, d: int, blocks: int, cond: int) -> list[tuple[str, tuple]]:
    """(name, shape) of the official backbone's parameters in parameters() order."""
    causal = kind == "ar"
    rows, width = (c + 1, d) if ell == 1 else (b + 1, d // ell)
    out = [("vocab_embed.embedding", (rows, width))]
    if not causal:
        out += [("sigma_map.mlp.0.weight", (cond, 256)), ("sigma_map.mlp.0.bias", (cond,)),
                ("sigma_map.mlp.2.weight", (cond, cond)), ("sigma_map.mlp.2.bias", (cond,))]
    for i in range(blocks):
        p = f"blocks.{i}."
        out += [(p + "norm1.weight", (d,)), (p + "attn_qkv.weight", (3 * d, d)), (p + "attn_out.weight", (d, d)),
                (p + "norm2.weight", (d,)), (p + "mlp.0.weight", (4 * d, d)), (p + "mlp.0.bias", (4 * d,)),
                (p + "mlp.2.weight", (d, 4 * d)), (p + "mlp.2.bias", (d,))]
        if not causal:
            out += [(p + "adaLN_modulation.weight", (6 * d, cond)), (p + "adaLN_modulation.bias", (6 * d,))]
    n_out = c + 1 if ell == 1 else c
    out += [("output_layer.norm_final.weight", (d,)), ("output_layer.linear.weight", (n_out, d)),
            ("output_layer.linear.bias", (n_out,))]
    if not causal:
        out += [("output_layer.adaLN_modulation.weight", (2 * d, cond)),
                ("output_layer.adaLN_modulation.bias", (2 * d,))]
    return out


def random_weights(shapes, seed: int, heads: int, d: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name, shape in shapes:
        scale = 1.0 if "norm" in name else 0.3
        w[name] = torch.randn(shape, generator=g) * scale + (1.0 if "norm" in name else 0.0)
    hs = d // heads
    w["rotary_emb.inv_freq"] = 1.0 / (10_000 ** (torch.arange(0, hs, 2).float() / hs))
    return w


# --------------------------------------------------------------------------------------------- stand-ins
def _module(name: str, **attrs):
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        value.__module__ = name
        value.__qualname__ = key
        setattr(mod, key, value)
    return mod


@dataclasses.dataclass
class Metadata:
    ref_type: typing.Any = typing.Any
    object_type: typing.Any = None
    optional: bool = True
    key: typing.Any = None
    flags: typing.Any = None


@dataclasses.dataclass
class ContainerMetadata(Metadata):
    key_type: typing.Any = typing.Any
    element_type: typing.Any = typing.Any


class ValueKind(enum.Enum):
    VALUE = 0
    MANDATORY_MISSING = 1


class AnyNode:
    def __init__(self, value, key, parent):
        self._val, self._parent = value, parent
        self._metadata = Metadata(key=key, flags={"readonly": None})
        self._kind = ValueKind.VALUE

    def __getstate__(self):
        return dict(self.__dict__)


class DictConfig:
    def __init__(self, content: dict, key=None, parent=None):
        self._parent = parent
        self._metadata = ContainerMetadata(key=key, object_type=dict)
        self._content = {k: DictConfig(v, k, self) if isinstance(v, dict) else
                         ListConfig(v, k, self) if isinstance(v, list) else AnyNode(v, k, self)
                         for k, v in content.items()}
        self._flags_cache = {"struct": False}

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_flags_cache")
        return state


class ListConfig:
    def __init__(self, content: list, key=None, parent=None):
        self._parent = parent
        self._metadata = ContainerMetadata(key=key, object_type=list)
        self._content = [AnyNode(v, i, self) for i, v in enumerate(content)]

    def __getstate__(self):
        return dict(self.__dict__)


class AttributeDict(dict):
    pass


class GPT2TokenizerFast:
    def __init__(self):
        self.name_or_path = "gpt2"
        self.init_kwargs = {"model_max_length": 1024, "bos_token": "<|endoftext|>"}
        self._serialized = b'{"version": "1.0", "model": {"type": "BPE"}}'
        self.pat = re.compile(r"'s|'t| ?\w+")  # the slow GPT-2 tokenizer keeps one (pickled as re._compile)
        self.added = collections.defaultdict(list)


@contextlib.contextmanager
def fake_modules():
    """The stand-in classes importable under the real names, for pickling only."""
    mods = {
        "omegaconf": _module("omegaconf"),
        "omegaconf.base": _module("omegaconf.base", Metadata=Metadata, ContainerMetadata=ContainerMetadata),
        "omegaconf._utils": _module("omegaconf._utils", ValueKind=ValueKind),
        "omegaconf.nodes": _module("omegaconf.nodes", AnyNode=AnyNode),
        "omegaconf.dictconfig": _module("omegaconf.dictconfig", DictConfig=DictConfig),
        "omegaconf.listconfig": _module("omegaconf.listconfig", ListConfig=ListConfig),
        "lightning.fabric.utilities.data": _module("lightning.fabric.utilities.data", AttributeDict=AttributeDict),
        "transformers.models.gpt2.tokenization_gpt2_fast": _module(
            "transformers.models.gpt2.tokenization_gpt2_fast", GPT2TokenizerFast=GPT2TokenizerFast),
    }
    for name in list(mods):  # parent packages, so that import of each name succeeds while pickling
        parts = name.split(".")
        for i in range(1, len(parts)):
            mods.setdefault(".".join(parts[:i]), _module(".".join(parts[:i])))
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield mods
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


# --------------------------------------------------------------------------------------------- files
def hydra_config(kind: str, c: int, ell: int, b: int, d: int, heads: int, blocks: int, cond: int, length: int,
                 carry_over: bool, time_conditioning: bool) -> dict:
    return {
        "mode": "train", "backbone": "ar" if kind == "ar" else "dit",
        "parameterization": "ar" if kind == "ar" else "subs", "time_conditioning": time_conditioning, "T": 0,
        "model": {"name": "tiny", "type": "ddit", "hidden_size": d, "cond_dim": cond, "length": length,
                  "n_blocks": blocks, "n_heads": heads, "scale_by_sigma": True, "dropout": 0.1,
                  "tie_word_embeddings": False, **({"causal": True} if kind == "ar" else {})},
        "noise": {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20},
        "training": {"ema": 0.9999, "antithetic_sampling": True, "sampling_eps": 1e-3},
        "prime": {"target_length": ell, "base": b, "vocab_size": c, "seq_length": length, "carry_over": carry_over},
        "callbacks": ["checkpoint_every_n_steps", "learning_rate_monitor"],
    }


def lightning_checkpoint(path, kind: str, *, c: int, ell: int, b: int, d: int = 16, heads: int = 2, blocks: int = 2,
                         cond: int = 8, length: int = 6, carry_over: bool = True, time_conditioning: bool = False,
                         seed: int = 0, extra_hparams: dict | None = None) -> dict:
    """Write the file; returns {"model": weights, "ema": EMA weights by name} (the official names)."""
    shapes = official_shapes(kind, c, ell, b, d, blocks, cond)
    model_w = random_weights(shapes, seed, heads, d)
    ema_w = random_weights(shapes, seed + 1, heads, d)
    state = {f"backbone.{k}": v for k, v in model_w.items()}
    shadow = [ema_w[name] for name, _ in shapes]
    with fake_modules():
        config = DictConfig(hydra_config(kind, c, ell, b, d, heads, blocks, cond, length, carry_over,
                                         time_conditioning))
        hp = AttributeDict(config=config, tokenizer=GPT2TokenizerFast(), **(extra_hparams or {}))
        ckpt = {
            "epoch": 3, "global_step": 1000, "pytorch-lightning_version": "2.2.1",
            "state_dict": state,
            "ema": {"shadow_params": shadow, "decay": 0.9999, "num_updates": 1000, "collected_params": []},
            "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 3}},
                                   "epoch_loop.batch_progress": {"current": {"completed": 10}}}},
            "callbacks": {"ModelCheckpoint{'monitor': 'val/nll'}": {"best_model_score": torch.tensor(3.2),
                                                                     "dirpath": "/ckpts"}},
            "optimizer_states": [{"state": {0: {"step": torch.tensor(1000.0),
                                                "exp_avg": torch.zeros_like(shadow[0])}},
                                  "param_groups": [{"lr": 3e-4, "betas": (0.9, 0.999), "params": [0]}]}],
            "lr_schedulers": [{"last_epoch": 1000}],
            "hparams_name": "kwargs", "hyper_parameters": hp,
        }
        torch.save(ckpt, path)
    return {"model": model_w, "ema": ema_w}


# --------------------------------------------------------------------------------------------- reference
def _ln(x, w):
    return F.layer_norm(x.float(), [x.shape[-1]]) * w[None, None, :]


def _rotary(qkv, inv_freq):
    """Official Rotary + flash-attn apply_rotary_emb_qkv_ (non-interleaved) on q and k; v untouched."""
    n = qkv.shape[1]
    freqs = torch.einsum("i,j->ij", torch.arange(n).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]

    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
        return torch.cat((-x2, x1), dim=-1)

    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin, v


def _attend(q, k, v, causal):
    """[B, n, h, hs] each; softmax(q·k/√hs) v."""
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(q.shape[-1])
    if causal:
        n = q.shape[1]
        scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
    return torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v).flatten(2)


def _timestep(sigma, w):
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(0, half, dtype=torch.float32) / half)
    args = sigma[:, None].float() * freqs[None]
    h = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    h = F.silu(h @ w["sigma_map.mlp.0.weight"].T + w["sigma_map.mlp.0.bias"])
    return h @ w["sigma_map.mlp.2.weight"].T + w["sigma_map.mlp.2.bias"]


def reference_logits(w: dict, indices: torch.Tensor, *, heads: int, ell: int, sigma=None,
                     causal: bool = False) -> torch.Tensor:
    """The official backbone's output: indices [B, L·ℓ] (sub-token ids, digits of each token adjacent) →
    [B, L, out] (ℓ = 1 and AR: C + 1 columns, the mask's last)."""
    bsz = indices.shape[0]
    x = w["vocab_embed.embedding"][indices]
    x = x.reshape(bsz, indices.shape[1] // ell, x.shape[-1] * ell)  # PerceiverDIT's reshape (ℓ = 1: no-op)
    n_blocks = len({k.split(".")[1] for k in w if k.startswith("blocks.")})
    c = None if causal else F.silu(_timestep(sigma, w))
    for i in range(n_blocks):
        p = lambda name: w[f"blocks.{i}.{name}"]  # noqa: E731
        if causal:
            h = _ln(x, p("norm1.weight"))
        else:
            mods = (c @ p("adaLN_modulation.weight").T + p("adaLN_modulation.bias"))[:, None]
            sh1, sc1, g1, sh2, sc2, g2 = mods.chunk(6, dim=2)
            h = _ln(x, p("norm1.weight")) * (1 + sc1) + sh1
        qkv = (h @ p("attn_qkv.weight").T).reshape(bsz, h.shape[1], 3, heads, -1)
        q, k, v = _rotary(qkv, w["rotary_emb.inv_freq"])
        a = _attend(q, k, v, causal) @ p("attn_out.weight").T
        x = x + (a if causal else g1 * a)
        h = _ln(x, p("norm2.weight"))
        h = h if causal else h * (1 + sc2) + sh2
        m = F.gelu(h @ p("mlp.0.weight").T + p("mlp.0.bias"), approximate="tanh") @ p("mlp.2.weight").T + p("mlp.2.bias")
        x = x + (m if causal else g2 * m)
    h = _ln(x, w["output_layer.norm_final.weight"])
    if not causal:
        shift, scale = (c @ w["output_layer.adaLN_modulation.weight"].T
                        + w["output_layer.adaLN_modulation.bias"])[:, None].chunk(2, dim=2)
        h = h * (1 + scale) + shift
    return h @ w["output_layer.linear.weight"].T + w["output_layer.linear.bias"]


def official_encode(x: torch.Tensor, base: int, ell: int) -> torch.Tensor:
    """The official utils.encoder: tokens [B, L] → sub-tokens [B, L·ℓ], digit j = ⌊x / b^(ℓ−1−j)⌋ mod b."""
    powers = base ** torch.arange(ell - 1, -1, -1)
    return ((x.unsqueeze(-1) // powers) % base).reshape(x.shape[0], -1)


def official_carry_over_log_probs(logits: torch.Tensor, sub: torch.Tensor, c: int, base: int, ell: int):
    """The official convert_to_marginal_filter_logit: softmax over tokens consistent with the observed digits."""
    digits = official_encode(torch.arange(c)[None], base, ell).reshape(c, ell)  # [C, ℓ]
    y = sub.reshape(sub.shape[0], -1, ell)  # [B, L, ℓ]
    ok = ((digits[None, None] == y[:, :, None]) | (y[:, :, None] == base)).all(-1)  # [B, L, C]
    return torch.log_softmax(logits.masked_fill(~ok, float("-inf")), dim=-1)
