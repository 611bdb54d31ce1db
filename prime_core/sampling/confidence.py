"""Confidence-ordered reveal (MaskGIT, Chang et al. 2022; LLaDA's low-confidence remasking, Nie et al. 2025) at the
sub-token level (DESIGN §2.5 item 8).

Step k of the T-step grid (t_k = 1 − k/T, ᾱ_k = α(t_k) clamped to ᾱ_0 = 0, ᾱ_T = 1) reveals exactly k_k units of
each row, chosen by confidence instead of at random:
1. p = p_θ(· | y_t) on V(y_t) at every position with a masked unit (temperature τ, nucleus top-p), and a draw
   x̂ ~ p per position through the sampler's own `reveal` (the ancestral draw and its keyed noise);
2. every still-masked unit u gets a confidence c_u (`prime_core.sampling.unit_confidence`): for digit j of token i the
   marginal p(d_j = x̂_j | y_t), for a token (grouped noise) p(x̂ | y_t) — or its margin or negative entropy;
3. the k_k most confident masked units take their digits from f(x̂); the rest stay masked. Ties are broken by a
   keyed uniform (stream REVEAL), so a batch equals its members sampled one by one.
k_k is the schedule's expected number of reveals, rounded cumulatively: with N_free the row's free units,
K_k = ⌊N_free·ᾱ_{k+1} + ½⌋ units are observed after step k and k_k = K_k − K_{k−1} (K_{−1} = 0). It depends
only on the schedule and N_free (deterministic), K_{T−1} = N_free since ᾱ_T = 1: every unit is revealed by the
end. Fixed units (prompt / infill) are never candidates and never change.

A step with k_k = 0 is idle for that row and costs no forward pass (``cache=False`` evaluates every row every
step, revealing the same units). NFE = the number of steps with k_k > 0.

Batch invariance (a row's tokens depend only on its key, never on n, ``batch_size`` or the other rows): the
ranking of step 3 compares confidences that are often equal but for the last bits (positions whose states look
alike, or units of probability ≈ 1), and a backbone's float32 output for a row changes in its last bits with
the batch it is computed in (2.4e-6 in log p for the main job's DiT between batches of 3 and 16). A batched
forward pass would turn that rounding into different samples (`prime sample -n 3` vs `-n 16` differed in 47 of
64 tokens of row 0). So by default each row is evaluated alone (``row_wise=True``): its log p is the same
numbers whatever else is sampled, and so are its draws, its ranking and its tokens. ``row_wise=False`` runs one
batched pass per step (faster on a GPU), and then rows equal their batch-of-one samples only as far as the
backbone's results do not depend on the batch.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .ancestral import AncestralSampler, Step, check_temperature, finish, for_rows, reveal_uniforms
from .unit_confidence import check_confidence_kind, reveal_with_log_probs, unit_confidence


def reveal_counts(free_units: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """k [n, T]: units each row reveals in step k, k_k = K_k − K_{k−1}, K_k = ⌊N_free·ᾱ_{k+1} + ½⌋.
    free_units [n] the rows' numbers of free units, alphas [T+1] the grid's ᾱ (ᾱ_T = 1)."""
    total = free_units.to(torch.float64).unsqueeze(-1)
    cumulative = torch.floor(total * alphas[1:].to(total.device).unsqueeze(0) + 0.5).long()
    cumulative = torch.minimum(cumulative, free_units.long().unsqueeze(-1))
    cumulative[:, -1] = free_units.long()
    return torch.diff(cumulative, dim=-1, prepend=torch.zeros_like(cumulative[:, :1]))


def top_units(confidence: torch.Tensor, tie: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """bool [n, N]: in each row the ``count`` [n] units of largest confidence [n, N] (−inf: not a candidate),
    ties broken by the larger ``tie`` uniform."""
    order = tie.argsort(dim=-1, descending=True, stable=True)
    order = order.gather(-1, confidence.gather(-1, order).argsort(dim=-1, descending=True, stable=True))
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(order.shape[-1], device=order.device)
                                            .expand_as(order).contiguous())
    return (rank < count.unsqueeze(-1)) & torch.isfinite(confidence)


class ConfidenceSampler(AncestralSampler):
    """The sampler of the module docstring, registered as ``confidence``. Option ``confidence``: "prob"
    (default, the probability of the drawn value), "margin" or "entropy" (`prime_core.sampling.unit_confidence`); option
    ``row_wise`` (default True): one forward pass per row, so a row never depends on the batch (module docstring)."""

    name = "confidence"
    progress_label = "sampling (confidence)"
    scheduled_reveals = True  # conformance: every row reveals a fixed number of units per step

    def __init__(self, confidence: str = "prob", row_wise: bool = True):
        if not isinstance(row_wise, bool):
            raise ValueError(f"row_wise must be true or false, got {row_wise!r}")
        self.confidence = check_confidence_kind(confidence)
        self.row_wise = row_wise

    def _sample_batch(self, model, y, keys, steps, temperature, top_p, draw_dtype, cache, return_trajectory,
                      progress):
        times, alphas = self.step_grid(model, steps)
        n, length, ell = y.shape
        units = 1 if model.grouped else ell
        free = (y == model.mask_id).view(n, length, units, -1).any(-1)
        counts = reveal_counts(free.flatten(1).sum(-1), alphas)  # [n, T]
        nfe = torch.zeros(n, dtype=torch.long, device=y.device)
        idle = torch.zeros(n, dtype=torch.long, device=y.device)
        calls, trajectory = 0, []
        for k in tqdm(range(steps), disable=not progress, desc=self.progress_label, leave=False):
            t, a_t, a_s = float(times[k]), float(alphas[k]), float(alphas[k + 1])
            active = counts[:, k] > 0
            idle += ~active
            rows = torch.arange(n, device=y.device) if not cache else active.nonzero().squeeze(-1)
            if len(rows):
                tau = check_temperature(temperature(t) if callable(temperature) else temperature, t)
                step = Step(t, a_t, a_s, 1.0, tau, top_p, draw_dtype, k)
                groups = rows.split(1) if self.row_wise else [rows]  # row_wise: no row sees another's batch
                for g in groups:
                    y[g] = self._reveal_most_confident(for_rows(model, g), y[g], counts[g, k], keys[g], step)
                nfe[rows] += 1
                calls += len(groups)
            if return_trajectory:
                trajectory.append(y.to("cpu", copy=True))
        return finish(self.name, model, y, nfe, idle, steps, calls, trajectory if return_trajectory else None)

    def _reveal_most_confident(self, model, y, count, keys, step: Step) -> torch.Tensor:
        """y_s of rows y [m, L, ℓ]: x̂ drawn at every masked unit, then the ``count`` [m] most confident kept."""
        m, length, ell = y.shape
        units = 1 if model.grouped else ell
        masked = y == model.mask_id
        draws = reveal_uniforms(keys, step.index, length, units)  # tie-break uniforms [m, L, U]
        y_all, log_p = reveal_with_log_probs(self, model, y, masked, draws, keys, step)
        if log_p is None:
            return y
        pos = masked.any(-1)
        confidence = torch.full((m, length, units), float("-inf"), dtype=torch.float64, device=y.device)
        confidence[pos] = unit_confidence(log_p, y_all[pos], model.map, model.grouped, self.confidence)
        unit_masked = masked.view(m, length, units, -1).any(-1)
        confidence = torch.where(unit_masked, confidence, torch.full_like(confidence, float("-inf")))
        chosen = top_units(confidence.view(m, -1), draws.view(m, -1), count).view(m, length, units, 1)
        chosen = chosen.expand(m, length, units, ell // units).reshape(m, length, ell) & masked
        return torch.where(chosen, y_all, y)


BUILTIN_CONFIDENCE = [ConfidenceSampler]
