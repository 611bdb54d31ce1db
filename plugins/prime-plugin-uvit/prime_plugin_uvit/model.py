"""U-ViT backbone for pixel-level MDM-Prime (Bao et al., "All are Worth Words", CVPR 2023; DESIGN §2.7, §2.8).

Diffusion tokens are pixels per channel: an image of ``channels`` × H × W with C grey levels is a sequence of
L = channels·H·W tokens in channel-major order (index ((c·H) + h)·W + w), each split into ℓ sub-tokens of base b.
The shapes, top to bottom:

    y [B, L, ℓ]  (digits 0 … b−1, mask m = b)
      → SubTokenEncoder                      [B, L, D]           each pixel-channel's ℓ digit embeddings (D/ℓ each)
      → image layout                         [B, ch, H, W, D]
      → patchify p×p                         [B, N, p·p·ch·D]    N = (H/p)(W/p) patches
      → linear patch embedding               [B, N, E]
      → [time token] + patches + positions   [B, N(+1), E]       every input is a token
      → in-blocks → mid-block → out-blocks   long skips: out-block k reads Linear([h, h_in(depth−k)])
      → LayerNorm, linear                    [B, N, p·p·ch·out_dim]
      → unpatchify                           [B, L, out_dim]     out_dim = C (joint heads) or ℓ·b (independent)

Attention is torch's scaled_dot_product_attention. The backbone knows nothing of diffusion beyond (y, t).
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from prime_core import Backbone, BackboneSpec, ConfigError, SubTokenEncoder


@attrs.frozen
class UViTConfig:
    """channels × image_size (H, W); patch p divides H and W; embed E divisible by heads; depth = in + mid + out
    blocks (odd; in = out = depth // 2, each in-block feeds one out-block through a long skip)."""

    channels: int = 1
    image_size: tuple[int, int] = (28, 28)
    patch_size: int = 2
    embed_dim: int = 128
    depth: int = 7
    heads: int = 4
    mlp_ratio: float = 4.0
    encoder: str = "shared"

    def validate(self, spec: BackboneSpec) -> None:
        h, w = self.image_size
        if spec.length != self.channels * h * w:
            raise ConfigError(f"U-ViT needs L = channels·H·W = {self.channels}·{h}·{w} = {self.channels * h * w} "
                              f"pixel-channel tokens, got L={spec.length}; set backbone_options image_size/channels")
        if h % self.patch_size or w % self.patch_size:
            raise ConfigError(f"U-ViT patch_size={self.patch_size} must divide the image size {h}×{w}")
        if self.embed_dim % self.heads:
            raise ConfigError(f"U-ViT embed_dim={self.embed_dim} must be divisible by heads={self.heads}")
        if self.depth < 1 or self.depth % 2 == 0:
            raise ConfigError(f"U-ViT depth must be odd (in-blocks + mid-block + out-blocks), got {self.depth}")


def _image_size(value, length: int, channels: int) -> tuple[int, int]:
    """Accept an int (square), [H, W], or None (square inferred from L / channels)."""
    if value is None:
        side = math.isqrt(length // max(channels, 1))
        if channels < 1 or side * side * channels != length:
            raise ConfigError(f"U-ViT cannot infer a square image from L={length} and channels={channels}; "
                              "set backbone_options image_size = [H, W]")
        return side, side
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ConfigError(f"U-ViT image_size must be an int or [H, W], got {value!r}")


# --------------------------------------------------------------------------------------------- parts
class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3×[B, nh, n, hs]
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block; an out-block also gets a long skip: h ← Linear([h, skip])."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, skip: bool = False):
        super().__init__()
        self.skip = nn.Linear(2 * dim, dim) if skip else None
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip is not None:
            x = self.skip(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def time_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of t ∈ [0, 1] (scaled by 1000 as in DDPM-style embeddings): [B] → [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float().unsqueeze(-1) * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


# --------------------------------------------------------------------------------------------- the model
class UViT(Backbone):
    """U-ViT over pixel-channel tokens (module docstring). Options: channels, image_size (int, [H, W] or None for
    a square inferred from L), patch_size, embed_dim, depth (odd), heads, mlp_ratio, encoder (SubTokenEncoder
    mode). Time enters as one extra token when spec.time_conditioned is set."""

    defaults: dict = {}

    def __init__(self, spec: BackboneSpec, **options):
        super().__init__(spec)
        opts = {**self.defaults, **options}
        allowed = {f.name for f in attrs.fields(UViTConfig)}
        unknown = set(opts) - allowed
        if unknown:
            raise ConfigError(f"unknown U-ViT option(s) {', '.join(sorted(unknown))}; allowed: "
                              f"{', '.join(sorted(allowed))}")
        channels = int(opts.get("channels", 1))
        opts["image_size"] = _image_size(opts.get("image_size"), spec.length, channels)
        cfg = UViTConfig(**opts)
        cfg.validate(spec)
        self.cfg = cfg
        self.time_conditioned = bool(spec.time_conditioned)
        h, w = cfg.image_size
        p, e = cfg.patch_size, cfg.embed_dim
        self.grid = (h // p, w // p)
        num_patches = self.grid[0] * self.grid[1]
        patch_in = p * p * cfg.channels * spec.width

        self.encoder = SubTokenEncoder(spec.base, spec.ell, spec.width, cfg.encoder)
        self.patch_embed = nn.Linear(patch_in, e)
        self.time_embed = (nn.Sequential(nn.Linear(e, 4 * e), nn.SiLU(), nn.Linear(4 * e, e))
                           if self.time_conditioned else None)
        extra = 1 if self.time_conditioned else 0
        self.extra_tokens = extra
        self.pos_embed = nn.Parameter(torch.zeros(1, extra + num_patches, e))
        half = cfg.depth // 2
        self.in_blocks = nn.ModuleList(Block(e, cfg.heads, cfg.mlp_ratio) for _ in range(half))
        self.mid_block = Block(e, cfg.heads, cfg.mlp_ratio)
        self.out_blocks = nn.ModuleList(Block(e, cfg.heads, cfg.mlp_ratio, skip=True) for _ in range(half))
        self.norm = nn.LayerNorm(e)
        self.decoder_pred = nn.Linear(e, p * p * cfg.channels * spec.out_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.decoder_pred.weight)  # uniform logits at start

    # layout helpers ------------------------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, K] (L = ch·H·W, channel-major) → [B, N, p·p·ch·K]."""
        b, _, k = x.shape
        c, p, (gh, gw) = self.cfg.channels, self.cfg.patch_size, self.grid
        x = x.view(b, c, gh, p, gw, p, k).permute(0, 2, 4, 3, 5, 1, 6)  # [B, gh, gw, p, p, ch, K]
        return x.reshape(b, gh * gw, p * p * c * k)

    def unpatchify(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """[B, N, p·p·ch·K] → [B, L, K]: the inverse of `patchify`."""
        b = x.shape[0]
        c, p, (gh, gw) = self.cfg.channels, self.cfg.patch_size, self.grid
        x = x.view(b, gh, gw, p, p, c, k).permute(0, 5, 1, 3, 2, 4, 6)  # [B, ch, gh, p, gw, p, K]
        return x.reshape(b, c * gh * p * gw * p, k)

    def forward(self, y: torch.Tensor, t: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """y [B, L, ℓ], t [B] (time-conditioned) or None → logits [B, L, out_dim], or [N, out_dim] at
        ``positions`` (flat b·L + i [N] or bool [B, L]; the patch decoder runs only for those tokens' slots)."""
        x = self.patch_embed(self.patchify(self.encoder(y)))  # [B, L, ℓ] → [B, L, D] → [B, N, E]
        if self.time_embed is not None:
            if t is None:
                raise ValueError("this U-ViT is time-conditioned: pass t [B]")
            t = t.expand(x.shape[0]) if t.dim() == 0 else t
            tok = self.time_embed(time_features(t.to(x.device), x.shape[-1])).unsqueeze(1)  # [B, 1, E]
            x = torch.cat([tok, x], dim=1)
        x = x + self.pos_embed
        skips = []
        for blk in self.in_blocks:
            x = blk(x)
            skips.append(x)
        x = self.mid_block(x)
        for blk in self.out_blocks:
            x = blk(x, skips.pop())
        x = self.norm(x)[:, self.extra_tokens:]  # drop the time token: [B, N, E]
        if positions is None:
            return self.unpatchify(self.decoder_pred(x), self.spec.out_dim)
        return self._decode_at(x, self.flat_indices(positions))

    def _decode_at(self, x: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        """Logits of the tokens at flat indices b·L + i [N] from patch features x [B, N_p, E]: token i sits in
        slot s of patch n (`patchify`'s layout), whose logits are the s-th out_dim slice of the patch decoder."""
        length, slots = self.spec.length, self.cfg.patch_size**2 * self.cfg.channels
        where = torch.arange(length, device=x.device).view(1, length, 1)
        inverse = torch.empty(length, dtype=torch.long, device=x.device)
        inverse[self.patchify(where).flatten()] = torch.arange(length, device=x.device)  # token → n·S + s
        row, i = torch.div(flat, length, rounding_mode="floor"), flat % length
        patch, slot = torch.div(inverse[i], slots, rounding_mode="floor"), inverse[i] % slots
        weight = self.decoder_pred.weight.view(slots, self.spec.out_dim, -1)  # [S, out_dim, E]
        bias = self.decoder_pred.bias.view(slots, self.spec.out_dim)
        return torch.einsum("ne,noe->no", x[row, patch], weight[slot]) + bias[slot]  # [N, out_dim]

    def flops_per_token(self) -> float:
        """≈ 2·params per patch, shared by its p²·ch pixel-channel tokens (attention's n² term ignored)."""
        return 2.0 * self.num_parameters() / (self.cfg.patch_size**2 * self.cfg.channels)


class UViTTiny(UViT):
    """For tests and CPU runs: E=64, depth 3, 2 heads."""

    defaults = {"embed_dim": 64, "depth": 3, "heads": 2}


class UViTSmall(UViT):
    """CPU-scale Fashion-MNIST runs: E=128, depth 7, 4 heads."""

    defaults = {"embed_dim": 128, "depth": 7, "heads": 4}


class UViTMid(UViT):
    """U-ViT-M-like (GPU scale): E=512, depth 13, 8 heads."""

    defaults = {"embed_dim": 512, "depth": 13, "heads": 8}


PRESETS = {"uvit-tiny": UViTTiny, "uvit-small": UViTSmall, "uvit-mid": UViTMid}
