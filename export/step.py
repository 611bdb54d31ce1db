"""One ancestral sampler step (DESIGN §2.5) as a single traceable module, for ONNX / TensorRT export.

Given sub-token ids y_t [B, L, ℓ] at time t and the next grid point s < t, the step computes

1. log p_θ(x | y_t) over V(y_t) (backbone + parameterization; carry-over masking over the C tokens through the
   map's digit table [C, ℓ]);
2. scores = log p / τ, then nucleus filtering (keep the smallest set of tokens whose mass reaches top_p), exactly
   as `prime_core.sampler.filter_log_probs` (skipped where top_p ≥ 1);
3. x̂ = argmax(scores + G), G = −log(−log U) Gumbel noise from the uniform input ``u_token`` [B, L, C]
   (clamped to (tiny, 1 − eps) of its dtype, like `prime_core.sampler.gumbel`), then f(x̂) = digit_table[x̂];
4. reveal: a masked sub-token (or, with grouped noise, a masked token's unit) becomes f(x̂)_j iff
   u_reveal < r, r = (α_s − α_t)/(1 − α_t) (r = 1 where α_t ≥ 1); observed sub-tokens are kept.

All randomness is an input, so the graph is deterministic and a Python loop can feed it the eager sampler's
own noise (see `export.runner`). Inputs: y [B, L, ℓ] int64, t [B] float32, alpha_t / alpha_s [B] float64,
u_reveal [B, L, U] float64 (U = ℓ, or 1 with grouped noise), u_token [B, L, C] (float64 or float32, the
Gumbel dtype), temperature [B] float32, top_p [B] float32. Outputs: y_s [B, L, ℓ] int64 and optionally
probs [B, L, C] = p_θ(x | y_t) (before filtering).
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_NAMES = ("y", "t", "alpha_t", "alpha_s", "u_reveal", "u_token", "temperature", "top_p")


class SamplerStep(nn.Module):
    def __init__(self, model, noise_dtype: torch.dtype = torch.float64, with_probs: bool = True):
        super().__init__()
        self.model = model
        self.noise_dtype = noise_dtype
        self.with_probs = with_probs
        self.mask_id = int(model.mask_id)
        self.register_buffer("digit_table", model.map.digit_table("cpu").clone(), persistent=False)  # [C, ℓ]

    @property
    def reveal_units(self) -> int:
        return 1 if self.model.grouped else self.model.ell

    def forward(self, y, t, alpha_t, alpha_s, u_reveal, u_token, temperature, top_p):
        log_p = self.model.log_probs(y, t)  # [B, L, C], −inf outside V(y_t)
        # temperature and nucleus, as filter_log_probs (x / 1 is exact, so τ = 1 changes nothing)
        scores = log_p / temperature[:, None, None]
        probs = torch.softmax(scores, dim=-1)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        mass_before = sorted_p.cumsum(-1) - sorted_p
        drop_sorted = (mass_before >= top_p[:, None, None]) & (top_p < 1.0)[:, None, None]
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
        # Gumbel-max draw, in the noise dtype (as ancestral_update: scores.to(noise.dtype) + G)
        finfo = torch.finfo(self.noise_dtype)
        u = u_token.to(self.noise_dtype).clamp(finfo.tiny, 1.0 - finfo.eps)
        x_hat = (scores.to(self.noise_dtype) - torch.log(-torch.log(u))).argmax(-1)  # [B, L]
        digits = self.digit_table[x_hat]  # f(x̂): [B, L, ℓ]
        # reveal masked units with probability r
        a_t, a_s = alpha_t.to(torch.float64), alpha_s.to(torch.float64)
        r = torch.where(a_t >= 1.0, torch.ones_like(a_t), (a_s - a_t) / (1.0 - a_t))  # [B]
        reveal = (y == self.mask_id) & (u_reveal.to(torch.float64) < r[:, None, None])  # [B, L, ℓ] (broadcast U)
        y_s = torch.where(reveal, digits, y)
        if self.with_probs:
            return y_s, log_p.exp()
        return y_s
