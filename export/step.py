"""One ancestral sampler step (DESIGN §2.5) as a single traceable module, for ONNX / TensorRT export.

Given sub-token ids y_t [B, L, ℓ] at time t and the next grid point s < t, the step computes

1. log p_θ(x | y_t) over V(y_t) (backbone + parameterization; carry-over masking over the C tokens through the
   map's digit table [C, ℓ]);
2. temperature τ and nucleus filtering by `prime_core.sampling.ancestral.filter_scores`, the very function the eager samplers
   call (float64, or float32 in graphs for TensorRT; τ < 1e-6 is the argmax; the most probable token always kept;
   nucleus skipped where top_p ≥ 1);
3. x̂ = the exact inverse-CDF draw `prime_core.sampling.counter_rng.inverse_cdf` (Softmax, CumSum, compare, ReduceMin /
   ReduceMax in the draw dtype) from the keyed uniform input ``u_token`` [N] (one per revealing position), then
   f(x̂) = digit_table[x̂];
   steps 2–3 (and, in graphs without the probs output, the head of step 1) run only at the N positions that
   reveal something, listed by ``positions`` [N] (flat b·L + i,
   row-major; the caller computes them with `reveal_rule`, as the eager sampler draws its reveals first);
4. reveal: a masked sub-token (or, with grouped noise, a masked token's unit) becomes f(x̂)_j iff
   u_reveal < r, r = (α_s − α_t)/(1 − α_t) (r = 1 where α_t ≥ 1); observed sub-tokens are kept.

All randomness is an input, so the graph is deterministic and a Python loop can feed it the eager sampler's
own noise (see `export.runner`). Inputs: y [B, L, ℓ] int64, t [B] float32, alpha_t / alpha_s [B] float64,
u_reveal [B, L, U] float64 (U = ℓ, or 1 with grouped noise), u_token [N] (float64 or float32, the
draw dtype), temperature [B] float32, top_p [B] float32, positions [N] int64 (ignored by a graph exported without nucleus, which
skips the sort — the costliest op of the step on CPU). Outputs: y_s [B, L, ℓ] int64 and optionally
probs [B, L, C] = p_θ(x | y_t) (before filtering).
"""

from __future__ import annotations

import torch
from torch import nn

from prime_core.api import filter_scores, inverse_cdf

INPUT_NAMES = ("y", "t", "alpha_t", "alpha_s", "u_reveal", "u_token", "temperature", "top_p", "positions")
N_AXIS_INPUTS = ("u_token", "positions")  # first axis: N, the number of revealing positions


class SamplerStep(nn.Module):
    def __init__(self, model, noise_dtype: torch.dtype = torch.float64, with_probs: bool = True,
                 nucleus: bool = True, filter_dtype: torch.dtype = torch.float64):
        super().__init__()
        self.filter_dtype = filter_dtype  # float64 as the eager sampler; float32 only for TensorRT (no float64)
        self.model = model
        self.nucleus = nucleus  # False: no top-p sort in the graph (top_p is then ignored and must be 1)
        self.noise_dtype = noise_dtype
        self.with_probs = with_probs
        self.mask_id = int(model.mask_id)
        self.register_buffer("digit_table", model.map.digit_table("cpu").clone(), persistent=False)  # [C, ℓ]

    @property
    def reveal_units(self) -> int:
        return 1 if self.model.grouped else self.model.ell

    def forward(self, y, t, alpha_t, alpha_s, u_reveal, u_token, temperature, top_p, positions):
        b, length, ell = y.shape
        row = torch.div(positions, length, rounding_mode="floor")  # [N] batch row of each revealing position
        if self.with_probs:
            log_p = self.model.log_probs(y, t)  # [B, L, C], −inf outside V(y_t)
            log_p_n = log_p.reshape(b * length, -1)[positions]
        else:  # the head (V(y_t) mask + softmax over C) only at the N revealing positions
            log_p_n = self.model.log_probs_at(y, positions, t)
        # temperature and nucleus at the N revealing positions: the eager samplers' own function (same sort,
        # tie rule, threshold rule and dtype), so both paths keep the same tokens
        scores = filter_scores(log_p_n, temperature[row][:, None], top_p[row][:, None], nucleus=self.nucleus,
                               dtype=self.filter_dtype, stable=False)  # ONNX TopK: ties lower index first
        # the eager sampler's draw (prime_core.sampling.ancestral.draw_tokens) on the keyed uniforms, in the draw dtype
        x_hat = inverse_cdf(scores.to(self.noise_dtype), u_token.to(self.noise_dtype))  # [N]
        digits = torch.zeros(b * length, ell, dtype=y.dtype, device=y.device)
        digits = digits.index_put((positions,), self.digit_table[x_hat]).view_as(y)  # f(x̂) where drawn
        reveal = reveal_rule(y, alpha_t, alpha_s, u_reveal, self.mask_id)
        y_s = torch.where(reveal, digits, y)
        if self.with_probs:
            return y_s, log_p.exp()
        return y_s


def reveal_rule(y, alpha_t, alpha_s, u_reveal, mask_id: int):
    """Which sub-tokens a step reveals: masked and u < r, r = (α_s − α_t)/(1 − α_t) (1 where α_t ≥ 1), computed
    in the dtype of α (float64, or float32 for TensorRT). u_reveal [B, L, U] broadcasts over the ℓ digits."""
    r = torch.where(alpha_t >= 1.0, torch.ones_like(alpha_t), (alpha_s - alpha_t) / (1.0 - alpha_t))  # [B]
    return (y == mask_id) & (u_reveal.to(r.dtype) < r[:, None, None])


def revealing_positions(reveal):
    """Flat indices b·L + i (row-major) of the positions with any revealed sub-token: the ``positions`` input."""
    return reveal.any(-1).flatten().nonzero().squeeze(-1)
