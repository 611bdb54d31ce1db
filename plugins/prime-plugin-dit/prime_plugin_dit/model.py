"""DiT backbone for MDM-Prime text models, read top to bottom: norm, rotary, attention, MLP, block, config, model.

The network is the diffusion transformer used by MDLM (Sahoo et al., 2024), itself DiT (Peebles & Xie, 2023) run
on token positions: pre-norm transformer blocks whose LayerNorms are modulated by adaLN (shift, scale and a
gate per sub-layer, all produced from a conditioning vector c by one zero-initialised linear layer, so every block
starts as the identity), rotary position embeddings (Su et al., 2021) over the L token positions, and
`F.scaled_dot_product_attention`. Time conditioning is optional: with it c = MLP(sinusoid(t)); without it (the
paper's text setup) c is one learned vector and adaLN reduces to learned per-channel shifts, scales and gates.

Input: sub-token ids y [B, L, ℓ] (values 0 … b, b = mask m) are embedded by the core's `SubTokenEncoder`, which
concatenates ℓ vectors of D/ℓ dims into one D-dim embedding per token (DESIGN §2.7): the L·ℓ sub-tokens fold into
L positions, so any ℓ dividing D works. Output: logits [B, L, out_dim] (out_dim = C for the joint heads).

Dims: B batch, L token positions, ℓ digits per token, D width, nh heads, hs = D / nh head size, C classes.
`causal=True` gives the autoregressive baseline of the same network (see `ar.py`).
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from prime_core import Backbone, BackboneSpec, SubTokenEncoder


# --------------------------------------------------------------------------------------------- norm
class LayerNorm(nn.Module):
    """LayerNorm with a weight and no bias (the adaLN shift supplies the bias)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x·(1 + scale) + shift, with shift/scale [B, 1, D] broadcast over the L positions."""
    return x * (1 + scale) + shift


# --------------------------------------------------------------------------------------------- rotary
def rotary_tables(length: int, head_size: int, base: float = 10_000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of the angles i·θ_k, θ_k = base^(−2k/hs), for positions i < L: each [L, hs/2]."""
    inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float64) / head_size)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_{2k}, x_{2k+1}) of x [B, nh, L, hs] by the angle of its position."""
    x1, x2 = x[..., 0::2], x[..., 1::2]  # [B, nh, L, hs/2] each
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # [B, nh, L, hs/2, 2]
    return out.flatten(-2).type_as(x)


# --------------------------------------------------------------------------------------------- attention
class KVCache:
    """Keys and values of the positions already run, for incremental causal decoding: per block
    [B, nh, L, hs] each, filled for positions < ``length`` (the rotary angle of a new position is its index)."""

    def __init__(self, depth: int, batch: int, heads: int, length: int, head_size: int,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        shape = (depth, batch, heads, length, head_size)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    def extend(self, block: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the n new positions' k, v [B, nh, n, hs] of ``block``; return all keys/values so far."""
        end = self.length + k.shape[2]
        self.keys[block, :, :, self.length:end] = k
        self.values[block, :, :, self.length:end] = v
        return self.keys[block, :, :, :end], self.values[block, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n


class BlockKVCache(KVCache):
    """Keys and values of the clean blocks of a block-diffusion model (DESIGN §2.8), a sliding window of at most
    L − B positions: before a block of n positions runs, the oldest whole blocks are dropped until it fits in L
    (`make_room`), so a generation of any length attends to as much clean context as training showed the last
    block. Keys are stored after their rotary rotation by absolute position (``position``), and rotary attention
    depends on relative positions only, so dropping old entries changes nothing for the ones kept."""

    def __init__(self, depth: int, batch: int, heads: int, length: int, head_size: int, block_size: int,
                 device=None, dtype: torch.dtype = torch.float32):
        super().__init__(depth, batch, heads, length, head_size, device, dtype)
        self.block_size, self.position = block_size, 0

    def make_room(self, n: int) -> None:
        """Drop the oldest blocks until ``n`` new positions fit after the cached ones."""
        if self.length + n <= self.keys.shape[3]:
            return
        drop = -(-(self.length + n - self.keys.shape[3]) // self.block_size) * self.block_size
        keep = self.length - drop
        self.keys[:, :, :, :keep] = self.keys[:, :, :, drop:self.length].clone()
        self.values[:, :, :, :keep] = self.values[:, :, :, drop:self.length].clone()
        self.length = keep

    def advance(self, n: int) -> None:
        self.length += n
        self.position += n

    def commit_mask(self, n: int, device) -> torch.Tensor | None:
        """The attention mask [n, cached + n] of ``n`` clean positions committed at once: all cached ones, and
        block-causal among themselves (whole blocks, each attending to the blocks ≤ itself); None for one block."""
        if n <= self.block_size:
            return None
        block = torch.arange(n, device=device) // self.block_size
        return torch.cat([torch.ones(n, self.length, dtype=torch.bool, device=device),
                          block[None, :] <= block[:, None]], dim=1)

    def select(self, rows: torch.Tensor) -> "BlockKVCache":
        """The cache of some rows only (a copy; rows [m] int64 indices)."""
        out = object.__new__(BlockKVCache)
        out.keys, out.values = self.keys[:, rows], self.values[:, rows]
        out.length, out.position, out.block_size = self.length, self.position, self.block_size
        return out


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, causal: bool):
        super().__init__()
        if width % heads:
            raise ValueError(f"width D={width} must be divisible by heads={heads}")
        self.heads, self.dropout, self.causal = heads, dropout, causal
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: tuple[KVCache, int] | None = None, mask: torch.Tensor | None = None,
                queries: int | None = None) -> torch.Tensor:
        """x [B, n, D] at n positions whose rotary tables are cos, sin [n, hs/2]. With ``cache`` = (KV cache,
        block index) the n positions follow the cached ones and attend to them, and to each other causally (a
        causal model) or all-to-all (a block-diffusion model's block). ``mask`` [n, n] bool (True = may attend):
        the block-diffusion training mask (`prime_core.api.block_attention_mask`). ``queries`` = q: only the first
        q positions ask (output [B, q, D]); all n still give keys and values."""
        b, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=-1)  # [B, n, D] each
        q, k, v = (z.view(b, length, self.heads, width // self.heads).transpose(1, 2) for z in (q, k, v))  # [B, nh, n, hs]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if queries is not None:
            q, length = q[:, :, :queries], queries
            mask = None if mask is None else mask[:queries]
        causal = self.causal and mask is None
        if cache is not None:
            kv, block = cache
            start = kv.length
            k, v = kv.extend(block, k, v)  # [B, nh, start + n, hs]
            causal = False
            if length > 1 and self.causal:  # query start + a sees keys ≤ start + a
                mask = torch.arange(start + length, device=x.device) <= start + torch.arange(length, device=x.device)[:, None]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=causal)  # [B, nh, n, hs]
        return self.proj(y.transpose(1, 2).reshape(b, length, width))  # [B, n, D]


# --------------------------------------------------------------------------------------------- MLP
class MLP(nn.Module):
    def __init__(self, width: int, ratio: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(width, ratio * width)
        self.proj = nn.Linear(ratio * width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))


# --------------------------------------------------------------------------------------------- block
class DiTBlock(nn.Module):
    """x ← x + gate₁ · Attn(adaLN₁(x)); x ← x + gate₂ · MLP(adaLN₂(x)). adaLN is zero-initialised (all gates 0)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, cond_dim: int, dropout: float, causal: bool):
        super().__init__()
        self.norm1, self.norm2 = LayerNorm(width), LayerNorm(width)
        self.attn = Attention(width, heads, dropout, causal)
        self.mlp = MLP(width, mlp_ratio, dropout)
        self.dropout = nn.Dropout(dropout)
        self.adaLN = nn.Linear(cond_dim, 6 * width)  # c → shift, scale, gate for attention and for the MLP

    def forward(self, x: torch.Tensor, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: tuple[KVCache, int] | None = None, mask: torch.Tensor | None = None,
                queries: int | None = None) -> torch.Tensor:
        """``queries`` = q: the output of the first q positions only, [B, q, D] (the others still give keys and
        values): the last block of a block-diffusion training pass, whose clean half nothing reads."""
        mod = self.adaLN(F.silu(c))[:, None, :]  # [B, 1, 6D]
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)  # [B, 1, D] each
        h = self.attn(modulate(self.norm1(x), shift1, scale1), cos, sin, cache, mask, queries)
        x = x[:, :queries] + gate1 * self.dropout(h)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class TimeEmbedding(nn.Module):
    """t ∈ [0, 1] [B] → c [B, cond_dim]: sinusoidal features of 1000·t, then a 2-layer MLP."""

    def __init__(self, cond_dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        angles = 1000.0 * t.float()[:, None] * freqs[None, :]  # [B, freq_dim/2]
        return self.mlp(torch.cat([angles.cos(), angles.sin()], dim=-1))


# --------------------------------------------------------------------------------------------- config
def _positive(inst, attribute, value):
    if value < 1:
        raise ValueError(f"dit option {attribute.name} must be ≥ 1, got {value}")


def _probability(inst, attribute, value):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"dit option {attribute.name} must lie in [0, 1), got {value}")


@attrs.frozen
class DiTConfig:
    """Depth and heads of the transformer; the width D is the model's (``model.width``, divisible by ℓ and by
    ``heads``). ``cond_dim`` is the width of the adaLN conditioning vector c."""

    depth: int = attrs.field(default=4, validator=_positive)
    heads: int = attrs.field(default=4, validator=_positive)
    mlp_ratio: int = attrs.field(default=4, validator=_positive)
    cond_dim: int = attrs.field(default=128, validator=_positive)
    dropout: float = attrs.field(default=0.0, validator=_probability)
    encoder: str = "shared"  # SubTokenEncoder mode: shared | per-slot | sum
    rope_base: float = 10_000.0


#: Named sizes. The width D comes from ``model.width``; the paper's text model is "base" at D = 768.
PRESETS: dict[str, dict] = {
    "tiny": {"depth": 2, "heads": 2, "cond_dim": 32},
    "small": {"depth": 4, "heads": 4, "cond_dim": 128},
    "medium": {"depth": 8, "heads": 8, "cond_dim": 128},
    "base": {"depth": 12, "heads": 12, "cond_dim": 128},
}


def resolve_config(preset: str | None, options: dict) -> DiTConfig:
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown dit preset {preset!r}; presets: {', '.join(PRESETS)}")
    return DiTConfig(**{**PRESETS.get(preset or "", {}), **options})


# --------------------------------------------------------------------------------------------- model
class DiT(Backbone):
    """y [B, L, ℓ] (+ t [B] if time-conditioned) → logits [B, L, out_dim]. Options: ``preset`` and any
    `DiTConfig` field (``depth``, ``heads``, ``mlp_ratio``, ``cond_dim``, ``dropout``, ``encoder``)."""

    causal: bool = False

    def __init__(self, spec: BackboneSpec, preset: str | None = "small", **options):
        super().__init__(spec)
        cfg = resolve_config(preset, options)
        if spec.width % cfg.heads:
            raise ValueError(f"model.width={spec.width} must be divisible by heads={cfg.heads}")
        if (spec.width // cfg.heads) % 2:
            raise ValueError(f"head size D/heads = {spec.width // cfg.heads} must be even for rotary embeddings")
        self.config = cfg
        self.time_conditioned = bool(spec.time_conditioned)
        self.encoder = SubTokenEncoder(spec.base, spec.ell, spec.width, cfg.encoder)
        if self.time_conditioned:
            self.time_embed = TimeEmbedding(cfg.cond_dim)
        else:  # no t: c is one learned vector (adaLN = learned per-channel shift/scale/gate)
            self.cond = nn.Parameter(torch.randn(cfg.cond_dim) * 0.02)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(DiTBlock(spec.width, cfg.heads, cfg.mlp_ratio, cfg.cond_dim, cfg.dropout,
                                             self.causal) for _ in range(cfg.depth))
        self.norm_f = LayerNorm(spec.width)
        self.adaLN_f = nn.Linear(cfg.cond_dim, 2 * spec.width)  # final shift, scale
        self.head = nn.Linear(spec.width, spec.out_dim)
        cos, sin = rotary_tables(spec.length, spec.width // cfg.heads, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)  # [L, hs/2]
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The one init rule: Xavier-uniform linears, N(0, 0.02) embeddings, and adaLN-Zero — every adaLN layer
        and the output head start at 0, so each block is the identity and the logits are uniform at step 0."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        for layer in [b.adaLN for b in self.blocks] + [self.adaLN_f, self.head]:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def condition(self, t: torch.Tensor | None, batch: int) -> torch.Tensor:
        """c [B, cond_dim]."""
        if not self.time_conditioned:
            return self.cond.expand(batch, -1)
        if t is None:
            raise ValueError("this DiT is time-conditioned (model.time_conditioned = true): pass t [B]")
        return self.time_embed(t.reshape(-1).expand(batch) if t.numel() == 1 else t)

    def embed(self, y: torch.Tensor) -> torch.Tensor:
        """Sub-token ids [B, L, ℓ] → token embeddings [B, L, D] (the L·ℓ → L fold of DESIGN §2.7)."""
        return self.encoder(y)

    def forward(self, y: torch.Tensor, t: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, L, out_dim], or [N, out_dim] at ``positions`` (flat b·L + i [N] or bool [B, L]): the
        blocks see the whole sequence; the final adaLN and the out_dim-way head run at those positions only."""
        b, length, ell = y.shape
        if length != self.spec.length or ell != self.spec.ell:
            raise ValueError(f"expected sub-token ids [B, L={self.spec.length}, ℓ={self.spec.ell}], "
                             f"got {tuple(y.shape)}")
        x = self.dropout(self.embed(y))  # [B, L, D]
        c = self.condition(t, b)  # [B, cond_dim]
        cos, sin = self.rope_cos.to(x.dtype), self.rope_sin.to(x.dtype)
        for block in self.blocks:
            x = block(x, c, cos, sin)  # [B, L, D]
        return self.final(x, c, positions)

    def final(self, x: torch.Tensor, c: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Final adaLN and head: x [B, L, D] → logits [B, L, out_dim] (or [N, out_dim] at ``positions``)."""
        shift, scale = self.adaLN_f(F.silu(c))[:, None, :].chunk(2, dim=-1)  # [B, 1, D] each
        if positions is not None:
            x = self.select_positions(x, positions)  # [N, D]
            row = torch.div(self.flat_indices(positions), self.spec.length, rounding_mode="floor")
            shift, scale = shift[row, 0], scale[row, 0]  # [N, D]
        return self.head(modulate(self.norm_f(x), shift, scale))

    # incremental causal decoding ------------------------------------------------------------------------------
    def new_cache(self, batch: int) -> KVCache:
        """An empty `KVCache` for ``batch`` sequences of up to L positions (causal models only)."""
        hs = self.spec.width // self.config.heads
        return KVCache(self.config.depth, batch, self.config.heads, self.spec.length, hs,
                       self.rope_cos.device, self.rope_cos.dtype)

    def decode(self, y: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Run n new positions y [B, n, ℓ] after the ``cache.length`` cached ones (their rotary angles start
        there): logits [B, n, out_dim], each position attending to the cache and causally to the new ones, so
        one token costs O(L·D) in attention instead of O(L²·D) for a full causal pass. Fills the cache."""
        if not self.causal:
            raise ValueError("KV-cached decoding needs a causal DiT (e.g. dit-ar)")
        b, n, _ = y.shape
        start = cache.length
        if start + n > self.spec.length:
            raise ValueError(f"KV cache holds L={self.spec.length} positions; {start} cached + {n} new exceed it")
        x = self.embed(y)  # [B, n, D]
        c = self.condition(None, b)
        cos = self.rope_cos[start:start + n].to(x.dtype)
        sin = self.rope_sin[start:start + n].to(x.dtype)
        for j, block in enumerate(self.blocks):
            x = block(x, c, cos, sin, (cache, j))
        cache.advance(n)
        return self.final(x, c)

    # block diffusion (DESIGN §2.8) ------------------------------------------------------------------------------
    #: this backbone can mask attention, so ``model.block_size`` works with it (`prime_core.api.block_attention_mask`)
    supports_blocks = True

    def block_forward(self, y_t: torch.Tensor, y_0: torch.Tensor, block_size: int,
                      positions: torch.Tensor | None = None) -> torch.Tensor:
        """All blocks in one pass: the noisy y_t and the clean y_0 [B, L, ℓ] side by side (2L positions, both halves
        at rotary positions 0 … L−1) under the block mask (noisy block k sees noisy block k and clean blocks < k;
        clean block k sees clean blocks ≤ k). Logits of the noisy half: [B, L, out_dim] (or [N, out_dim] at
        ``positions``). SDPA with a boolean mask: on CUDA it picks its memory-efficient kernel by itself."""
        from prime_core.api import block_attention_mask

        if self.causal:
            raise ValueError("block diffusion needs a bidirectional DiT (backbone dit), not the causal dit-ar")
        b, length, _ = y_t.shape
        x = self.dropout(self.embed(torch.cat([y_t, y_0], dim=1)))  # [B, 2L, D]
        c = self.condition(None, b)
        cos = torch.cat([self.rope_cos[:length]] * 2).to(x.dtype)
        sin = torch.cat([self.rope_sin[:length]] * 2).to(x.dtype)
        mask = block_attention_mask(length, block_size, x.device)  # [2L, 2L]
        for j, block in enumerate(self.blocks):  # the last block's clean half is never read: only keys/values
            x = block(x, c, cos, sin, mask=mask, queries=length if j == len(self.blocks) - 1 else None)
        return self.final(x, c, positions)

    def new_block_cache(self, batch: int, block_size: int) -> BlockKVCache:
        """An empty `BlockKVCache` for ``batch`` sequences (window L positions, B = ``block_size``)."""
        hs = self.spec.width // self.config.heads
        return BlockKVCache(self.config.depth, batch, self.config.heads, self.spec.length, hs, block_size,
                            self.rope_cos.device, self.rope_cos.dtype)

    def rope_at(self, start: int, n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary tables of absolute positions start … start + n − 1 (beyond L too: generations of any length)."""
        if start + n <= self.spec.length:
            return self.rope_cos[start:start + n].to(dtype), self.rope_sin[start:start + n].to(dtype)
        hs = self.spec.width // self.config.heads
        inv_freq = self.config.rope_base ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
        angles = torch.arange(start, start + n, dtype=torch.float64)[:, None] * inv_freq[None, :]
        return angles.cos().to(self.rope_cos.device, dtype), angles.sin().to(self.rope_cos.device, dtype)

    def block_decode(self, y: torch.Tensor, cache: BlockKVCache, commit: bool = False) -> torch.Tensor | None:
        """One block y [B, n, ℓ] after the cached clean blocks: it attends to them and to all of itself. Returns
        its logits [B, n, out_dim]; with ``commit`` (y is clean: one block, or several whole blocks, each then
        attending to the blocks ≤ itself) its keys/values join the cache instead and nothing is returned."""
        b, n, _ = y.shape
        cache.make_room(n)
        x = self.embed(y)  # [B, n, D]
        c = self.condition(None, b)
        cos, sin = self.rope_at(cache.position, n, x.dtype)
        mask = cache.commit_mask(n, x.device) if commit else None
        for j, block in enumerate(self.blocks):
            x = block(x, c, cos, sin, (cache, j), mask)
        if commit:
            cache.advance(n)
            return None
        return self.final(x, c)

    # sizes -----------------------------------------------------------------------------------------------------
    def flops_per_token(self) -> float:
        """Forward FLOPs per token position (2 per multiply-add), counted exactly for the matmuls:
        per block 2·(3D² + D² + 2·r·D²) for qkv, proj and MLP plus 2·2·L·D for QKᵀ and A·V (half when causal,
        as the masked half need not be computed), the C-way head 2·D·out_dim, and adaLN's 2·c·(6D·depth + 2D)
        once per sequence, i.e. divided by L. Embedding lookups, norms and softmax are not counted.
        A training step costs about 3× this (forward + backward)."""
        d, length, cfg = self.spec.width, self.spec.length, self.config
        matmul = 2 * (4 * d * d + 2 * cfg.mlp_ratio * d * d) * cfg.depth
        attn = 4 * length * d * cfg.depth * (0.5 if self.causal else 1.0)
        head = 2 * d * self.spec.out_dim
        adaln = 2 * cfg.cond_dim * (6 * d * cfg.depth + 2 * d) / length
        return float(matmul + attn + head + adaln)
