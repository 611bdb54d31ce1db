"""The released MDLM / MDM-Prime / AR text networks, re-stated so that their official weights load unchanged.

These backbones reproduce the networks of the paper's code (``text/models/dit.py``: ``DIT`` for ℓ = 1,
``PerceiverDIT`` for ℓ > 1; ``text/models/autoregressive.py``: ``AR``) with the same module names, so an
official ``state_dict`` (without its ``backbone.`` prefix) loads strictly and the EMA's ``shadow_params`` list
follows `parameters()` order. They differ from prime's own `DiT` (model.py) in ways the weights depend on:

- the conditioning vector is c = SiLU(TimestepEmbedder(σ)), computed once; every adaLN layer reads c itself
  (prime's DiT applies SiLU inside each block). The time embedder always runs: a model trained without time
  conditioning sees σ = 0, a constant c. With time conditioning σ = −log α_t = −log(1 − (1−δ)t), the log-linear
  schedule's total noise (δ = 1e-3), which is what the official code feeds its network.
- adaLN of each block: (shift, scale, gate) for attention, then for the MLP, in that order, from one linear
  layer of 6D outputs; the final layer's adaLN gives (shift, scale). modulate(x) = x·(1 + scale) + shift.
- LayerNorm has a weight and no bias, computed in float32.
- rotary embeddings rotate the two halves of each head (x₁ = x[:hs/2], x₂ = x[hs/2:], GPT-NeoX style, not
  interleaved pairs) of q and k by the angle i·θ_k, θ_k = 10000^(−2k/hs), i the token position.
- embeddings: ℓ = 1: one table of C + 1 rows (the mask m = C last); ℓ > 1: one table of b + 1 rows (digits and
  the mask m = b) of width D/ℓ, shared by the ℓ digit slots and concatenated in digit order (most significant
  first, like prime's base-b map, which both codes compute as ⌊x / b^(ℓ−1−j)⌋ mod b).
- outputs: ℓ > 1: C logits. ℓ = 1 (and AR): C + 1 logits, the last the mask's, which the official SUBS / AR
  code sets to −∞ (−10⁶ / −10³) before the softmax: it is dropped here, so the backbone emits the C logits prime
  heads expect and the distribution is unchanged.

The official code runs its blocks under bfloat16 autocast on GPU (flash-attention); these run in the input's
dtype (float32 by default), so their logits match the official network's float32 evaluation.

Dims: B batch, L token positions, ℓ digits, D width, nh heads, hs = D/nh, C classes, b base, c_dim cond width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from prime_core import Backbone, BackboneSpec

from .model import BlockKVCache

#: Frequencies of the sinusoidal σ features (the official TimestepEmbedder's frequency_embedding_size).
FREQ_DIM = 256


# --------------------------------------------------------------------------------------------- layers
class LayerNorm(nn.Module):
    """LayerNorm(x)·w in float32, no bias (the adaLN shift plays the bias)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), (x.shape[-1],)) * self.weight


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x·(1 + scale) + shift; shift, scale [B, 1, D]."""
    return x * (1 + scale) + shift


class Rotary(nn.Module):
    """Holds θ_k = 10000^(−2k/hs) as the persistent buffer ``inv_freq`` (it is in the official state_dict)."""

    def __init__(self, head_size: int, base: float = 10_000.0):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / base ** (torch.arange(0, head_size, 2).float() / head_size))

    def forward(self, length: int, device, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of i·θ_k for positions start ≤ i < start + length: [length, hs/2] each."""
        positions = torch.arange(start, start + length, device=device, dtype=self.inv_freq.dtype)
        angles = positions[:, None] * self.inv_freq[None]
        return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, L, nh, hs]: (x₁, x₂) → (x₁ cos − x₂ sin, x₁ sin + x₂ cos), x₁/x₂ the first/second half of hs."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos[:, None, :].to(x.dtype), sin[:, None, :].to(x.dtype)  # [L, 1, hs/2]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def attention(qkv: torch.Tensor, heads: int, cos: torch.Tensor, sin: torch.Tensor, causal: bool,
              mask: torch.Tensor | None = None, cache=None) -> torch.Tensor:
    """qkv [B, L, 3D] (q, k, v blocks, each nh × hs) → softmax(q kᵀ/√hs) v [B, L, D], rotary on q and k;
    ``mask`` [L, L] bool (True = may attend): BD3-LM's block-diffusion mask. ``cache`` = (a `BlockKVCache` of
    prime's DiT, layer index): the L positions follow the cached clean blocks and attend to them too (the keys
    are stored rotated, so the cache holds the same tensors whichever rotary layout made them)."""
    b, length, three_d = qkv.shape
    q, k, v = qkv.view(b, length, 3, heads, three_d // (3 * heads)).unbind(2)  # [B, L, nh, hs] each
    q, k = rotate(q, cos, sin), rotate(k, cos, sin)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, nh, L, hs]
    if cache is not None:
        kv, layer = cache
        k, v = kv.extend(layer, k, v)  # [B, nh, cached + L, hs]
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    return y.transpose(1, 2).reshape(b, length, three_d // 3)


class TimestepEmbedder(nn.Module):
    """σ [B] → MLP([cos(σ ω_k), sin(σ ω_k)]) [B, c_dim], ω_k = 10000^(−k/128), k < 128."""

    def __init__(self, cond_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(FREQ_DIM, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        half = FREQ_DIM // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=sigma.device) / half)
        args = sigma.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=-1).to(self.mlp[0].weight.dtype))


class EmbeddingLayer(nn.Module):
    """A bare [rows, dim] table named ``embedding`` (the official parameter name)."""

    def __init__(self, dim: int, rows: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(rows, dim))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding[ids]


def _mlp(dim: int, ratio: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, ratio * dim), nn.GELU(approximate="tanh"), nn.Linear(ratio * dim, dim))


# --------------------------------------------------------------------------------------------- blocks
class DDiTBlock(nn.Module):
    """x ← x + g₁·W_o Attn(modulate(LN₁(x), s₁, a₁)); x ← x + g₂·MLP(modulate(LN₂(x), s₂, a₂)),
    (s₁, a₁, g₁, s₂, a₂, g₂) = adaLN_modulation(c) in that order."""

    def __init__(self, dim: int, heads: int, cond_dim: int, mlp_ratio: int = 4):
        super().__init__()
        self.heads = heads
        self.norm1 = LayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = LayerNorm(dim)
        self.mlp = _mlp(dim, mlp_ratio)
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * dim)

    def forward(self, x, cos, sin, c, mask=None, cache=None):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c)[:, None].chunk(6, dim=2)
        h = attention(self.attn_qkv(modulate(self.norm1(x), shift1, scale1)), self.heads, cos, sin, False, mask,
                      cache)
        x = x + gate1 * self.attn_out(h)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class CausalBlock(nn.Module):
    """The AR block: x ← x + W_o CausalAttn(LN₁(x)); x ← x + MLP(LN₂(x)) (no adaLN)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.heads = heads
        self.norm1 = LayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = LayerNorm(dim)
        self.mlp = _mlp(dim, mlp_ratio)

    def forward(self, x, cos, sin, c=None):
        x = x + self.attn_out(attention(self.attn_qkv(self.norm1(x)), self.heads, cos, sin, True))
        return x + self.mlp(self.norm2(x))


class DDitFinalLayer(nn.Module):
    """logits = linear(modulate(LN(x), shift, scale)), (shift, scale) = adaLN_modulation(c)."""

    def __init__(self, dim: int, out: int, cond_dim: int):
        super().__init__()
        self.norm_final = LayerNorm(dim)
        self.linear = nn.Linear(dim, out)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * dim)

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, dim=2)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class CausalFinalLayer(nn.Module):
    """logits = linear(LN(x)) (the AR model's output layer)."""

    def __init__(self, dim: int, out: int):
        super().__init__()
        self.norm_final = LayerNorm(dim)
        self.linear = nn.Linear(dim, out)

    def forward(self, x, c=None):
        return self.linear(self.norm_final(x))


# --------------------------------------------------------------------------------------------- backbones
def _check_sizes(spec: BackboneSpec, n_heads: int) -> None:
    if spec.width % n_heads or (spec.width // n_heads) % 2:
        raise ValueError(f"width D={spec.width} must split into n_heads={n_heads} heads of even size")


def _select(logits: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    """[B, L, C] → [N, C] at ``positions`` (flat indices b·L + i [N] or a bool mask [B, L]; `Backbone`)."""
    return Backbone.select_positions(logits, positions)


class OfficialDiT(Backbone):
    """The official ``DIT`` (ℓ = 1) / ``PerceiverDIT`` (ℓ > 1): y [B, L, ℓ] (+ t [B]) → logits [B, L, C].
    Options: ``n_heads``, ``n_blocks``, ``cond_dim`` (official ``model.*``), ``mlp_ratio`` (4), ``sigma_delta``
    δ of σ(t) = −log(1 − (1−δ)t) when time-conditioned (1e-3)."""

    conformance_options = {"n_heads": 2, "n_blocks": 1, "cond_dim": 8}

    def __init__(self, spec: BackboneSpec, n_heads: int = 12, n_blocks: int = 12, cond_dim: int = 128,
                 mlp_ratio: int = 4, sigma_delta: float = 1e-3):
        super().__init__(spec)
        _check_sizes(spec, n_heads)
        self.time_conditioned = bool(spec.time_conditioned)
        self.sigma_delta = float(sigma_delta)
        d, ell = spec.width, spec.ell
        rows = spec.num_classes + 1 if ell == 1 else spec.base + 1  # ℓ = 1: C + 1 (mask C); else b + 1 (mask b)
        self.vocab_embed = EmbeddingLayer(d // ell, rows)
        self.sigma_map = TimestepEmbedder(cond_dim)
        self.rotary_emb = Rotary(d // n_heads)
        self.blocks = nn.ModuleList(DDiTBlock(d, n_heads, cond_dim, mlp_ratio) for _ in range(n_blocks))
        # out_dim = C for the released joint / carry-over models (+ the mask's column at ℓ = 1)
        self.output_layer = DDitFinalLayer(d, spec.out_dim + (ell == 1), cond_dim)

    def sigma(self, t: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        """σ [B]: 0 without time conditioning, else −log(1 − (1−δ)t)."""
        if not self.time_conditioned:
            return torch.zeros(batch, device=device)
        if t is None:
            raise ValueError("this imported model is time-conditioned: pass t [B]")
        t = t.reshape(-1).float().expand(batch) if t.numel() == 1 else t.float()
        return -torch.log1p(-(1.0 - self.sigma_delta) * t)

    def forward(self, y: torch.Tensor, t: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        b, length, ell = y.shape
        x = self.vocab_embed(y).flatten(-2)  # [B, L, ℓ, D/ℓ] → [B, L, D], digits concatenated in order
        c = F.silu(self.sigma_map(self.sigma(t, b, y.device)))  # [B, c_dim]
        cos, sin = self.rotary_emb(length, y.device)
        for block in self.blocks:
            x = block(x, cos, sin, c)
        logits = self.output_layer(x, c)[..., : self.spec.out_dim]  # ℓ = 1: drop the mask's column
        return _select(logits, positions)

    #: BD3-LM's DIT is this network run on [x_t ; x_0] under the block-diffusion mask (``prime import bd3lm``)
    supports_blocks = True

    def block_forward(self, y_t: torch.Tensor, y_0: torch.Tensor, block_size: int,
                      positions: torch.Tensor | None = None) -> torch.Tensor:
        """BD3-LM's training forward (DESIGN §2.8): [y_t ; y_0] (2L positions, each half at rotary positions
        0 … L−1) under `prime_core.api.block_attention_mask`; logits of the noisy half [B, L, C]."""
        from prime_core.api import block_attention_mask

        b, length, _ = y_t.shape
        x = self.vocab_embed(torch.cat([y_t, y_0], dim=1)).flatten(-2)  # [B, 2L, D]
        c = F.silu(self.sigma_map(self.sigma(None, b, y_t.device)))
        cos, sin = self.rotary_emb(length, y_t.device)
        cos, sin = torch.cat([cos, cos]), torch.cat([sin, sin])
        mask = block_attention_mask(length, block_size, y_t.device)
        for block in self.blocks:
            x = block(x, cos, sin, c, mask)
        logits = self.output_layer(x[:, :length], c)[..., : self.spec.out_dim]
        return _select(logits, positions)

    def new_block_cache(self, batch: int, block_size: int) -> BlockKVCache:
        """An empty KV cache of clean blocks (prime's `BlockKVCache`: window L positions, B = ``block_size``)."""
        first = self.blocks[0]
        hs = self.spec.width // first.heads
        return BlockKVCache(len(self.blocks), batch, first.heads, self.spec.length, hs, block_size,
                            first.attn_qkv.weight.device, first.attn_qkv.weight.dtype)

    def block_decode(self, y: torch.Tensor, cache: BlockKVCache, commit: bool = False) -> torch.Tensor | None:
        """BD3-LM's cached sampling step: one block y [B, n, ℓ] after the cached clean blocks, attending to them and
        to all of itself; its logits [B, n, C]. With ``commit`` (clean blocks) their keys/values join the cache
        instead (block-causal among themselves, as the clean half of `block_forward`) and nothing is returned."""
        b, n, _ = y.shape
        cache.make_room(n)
        x = self.vocab_embed(y).flatten(-2)  # [B, n, D]
        c = F.silu(self.sigma_map(self.sigma(None, b, y.device)))
        cos, sin = self.rotary_emb(n, y.device, start=cache.position)
        mask = cache.commit_mask(n, y.device) if commit else None
        for j, block in enumerate(self.blocks):
            x = block(x, cos, sin, c, mask, (cache, j))
        if commit:
            cache.advance(n)
            return None
        return self.output_layer(x, c)[..., : self.spec.out_dim]


class OfficialAR(Backbone):
    """The official causal ``AR`` (ℓ = 1): logits [B, L, C] where position i gives p_θ(x_i | x_{<i}).

    The official model reads x_{0…L−2} and predicts x_{1…L−1} (a causal network: position i − 1's output
    depends on x_{≤i−1} only); positions 1 … L−1 here are exactly those outputs. It never predicts x₀: position
    0 here is the network run on the one-token sequence [m], m = C the official table's mask row (never trained),
    a normalised p_θ(x₀ | m) that the official training never fitted (x₀ is BOS in its data). The exact NLL of
    prime's ``ar-nll`` therefore has one such term per sequence beyond the official L − 1 next-token terms.
    Options: ``n_heads``, ``n_blocks``, ``mlp_ratio``."""

    causal = True
    eval_metrics = ("ar-nll",)
    conformance_options = {"n_heads": 2, "n_blocks": 1}
    conformance_spec = {"ell": 1, "base": 6, "out_dim": 6}  # token-level only (C = 6, b = C)

    def __init__(self, spec: BackboneSpec, n_heads: int = 12, n_blocks: int = 12, mlp_ratio: int = 4,
                 cond_dim: int | None = None):
        super().__init__(spec)
        _check_sizes(spec, n_heads)
        if spec.ell != 1 or spec.time_conditioned or spec.out_dim != spec.num_classes:
            raise ValueError("ar-official is the token-level AR model: model.ell = 1, model.time_conditioned = "
                             "false and a C-way head (joint or carry-over)")
        d = spec.width
        self.vocab_embed = EmbeddingLayer(d, spec.num_classes + 1)
        self.rotary_emb = Rotary(d // n_heads)
        self.blocks = nn.ModuleList(CausalBlock(d, n_heads, mlp_ratio) for _ in range(n_blocks))
        self.output_layer = CausalFinalLayer(d, spec.num_classes + 1)

    def network(self, ids: torch.Tensor) -> torch.Tensor:
        """The official AR network on token ids [B, n] (positions 0 … n−1): C + 1 logits [B, n, C+1]."""
        x = self.vocab_embed(ids)
        cos, sin = self.rotary_emb(ids.shape[1], ids.device)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.output_layer(x)

    def forward(self, y: torch.Tensor, t: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        tokens = y[..., 0]  # [B, L]
        first = self.network(torch.full_like(tokens[:, :1], self.spec.num_classes))  # p(x₀ | m)
        rest = self.network(tokens[:, :-1])  # official: x_{0…L−2} → predictions of x_{1…L−1}
        logits = torch.cat([first, rest], dim=1)[..., : self.spec.num_classes]  # drop the mask's column
        return _select(logits, positions)


__all__ = ["OfficialAR", "OfficialDiT"]
