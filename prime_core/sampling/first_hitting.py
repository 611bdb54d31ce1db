"""First-hitting (event-driven) sampler (DESIGN §2.5 item 6): the exact continuous-time reverse process.

Which reveal units (sub-tokens, or tokens under grouped noise) are revealed never depends on p_θ: under the
forward process a unit is still observed at time t with probability α_t, so its reveal time in the reverse
process is τ_u = α⁻¹(U_u), U_u ~ U(0, 1) (P(τ_u ≥ t) = P(U_u ≤ α_t) = α_t). All reveal times are drawn up front
(U_u keyed by (row key, unit u, stream REVEAL_TIME), `prime_core.sampling.counter_rng`). Then, in decreasing time order,
the backbone is evaluated only at each row's distinct reveal **events**: at event e with time τ the row's state
y holds every unit with τ_u > τ, p = p_θ(· | y) at t = τ (per row: rows at different times share one batched
forward pass), x̂ is drawn by the keyed inverse-CDF draw after temperature / nucleus filtering (one
uniform keyed by (row key, e, position i, stream EVENT_TOKEN), `prime_core.sampling.ancestral.draw_tokens`), and the units of the event take their digits from f(x̂) — digits of
a partly revealed token come from p_θ restricted to V(y), as in the ancestral sampler.

NFE per row = its number of distinct reveal events ≤ L·ℓ (grouped noise: L), whatever the resolution.
``steps`` = T quantises the reveal times to the T-step grid (unit u is revealed in the first step k with
ᾱ_{k+1} ≥ U_u, evaluated at t_k): the T-step ancestral sampler's distribution, with events = the distinct steps
that reveal something. Without ``steps`` (or steps=0) the times are continuous: the exact continuous-time sampler,
whose distribution for a time-independent denoiser is `prime_core.diffusion.exact.exact_log_likelihood`. Fixed units
(``fixed_tokens`` / ``fixed_digits``) are observed from the start and are never events. Every random number is
keyed, so a batch equals its members sampled one by one and batch size / chunking never change a sample.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .counter_rng import EVENT_TOKEN, REVEAL_TIME
from ..errors import check_count
from ..interfaces import Sampler
from .ancestral import (SampleResult, Temperature, ancestral_update, check_temperature, draw_tokens, filter_log_probs,
                        finish, for_rows, in_batches, reveal_uniforms, start_rows)


def reveal_times(model, keys: torch.Tensor, steps: int | None) -> torch.Tensor:
    """Reveal time of every unit [n, L, U] (float64): τ = α⁻¹(U) continuous, or with T steps the grid time t_k
    of the first step k with ᾱ_{k+1} ≥ U (the step the T-step sampler would reveal the unit in)."""
    units = 1 if model.grouped else model.ell
    u = reveal_uniforms(keys, 0, model.length, units, REVEAL_TIME)
    if not steps:
        return model.schedule.inverse_alpha(u).to(u.dtype)
    alphas = model.schedule.step_alphas(steps).to(u.device)  # ᾱ_0 = 0 … ᾱ_T = 1
    k = torch.searchsorted(alphas[1:].contiguous(), u.contiguous())  # first k with ᾱ_{k+1} ≥ U
    return 1.0 - k.clamp_max(steps - 1).to(torch.float64) / steps


def event_schedule(times: torch.Tensor, free: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group each row's free units into events of equal time, latest first. times, free [n, N].
    Returns event index [n, N] (−1 for units that are not free), event time [n, N] (time of event e in column e)
    and the number of events per row [n]."""
    n, size = times.shape
    t = torch.where(free, times, torch.full_like(times, -1.0))  # not free: after every real time (t ≥ 0)
    sorted_t, order = t.sort(dim=-1, descending=True, stable=True)
    new = torch.ones_like(free)
    new[:, 1:] = sorted_t[:, 1:] != sorted_t[:, :-1]
    sorted_event = new.long().cumsum(-1) - 1
    sorted_event = torch.where(sorted_t >= 0, sorted_event, torch.full_like(sorted_event, -1))
    event = torch.empty_like(sorted_event).scatter_(-1, order, sorted_event)
    count = (sorted_event.max(-1).values + 1).clamp_min(0)
    first = new & (sorted_t >= 0)  # the first unit of each event carries its time; the rest go to a spare column
    column = torch.where(first, sorted_event, torch.full_like(sorted_event, size))
    event_time = torch.zeros(n, size + 1, dtype=times.dtype, device=times.device).scatter_(-1, column, sorted_t)
    return event, event_time[:, :size], count


class FirstHittingSampler(Sampler):
    """The first-hitting sampler of the module docstring (registered as ``first-hitting``)."""

    name = "first-hitting"
    progress_label = "sampling (first-hitting)"
    event_driven = True  # NFE = reveal events; no idle steps (the conformance suite checks NFE instead)

    def __init__(self, continuous: bool = False):
        """continuous=True ignores ``steps`` (e.g. the CLI's --steps): always the exact continuous-time times."""
        if not isinstance(continuous, bool):
            raise ValueError(f"continuous must be true or false, got {continuous!r}")
        self.continuous = continuous

    @torch.no_grad()
    def sample(self, model, num_samples: int, *, steps: int | None = None, seed: int = 0,
               seeds: list[int] | None = None, temperature: Temperature = 1.0, top_p: float = 1.0,
               draw_dtype: torch.dtype = torch.float32, cache: bool = True, batch_size: int | None = None,
               fixed_tokens: torch.Tensor | None = None, fixed_digits: torch.Tensor | None = None,
               return_trajectory: bool = False, progress: bool = False) -> SampleResult:
        """Draw ``num_samples`` sequences (module docstring). steps: None/0 = continuous reveal times, T ≥ 1 =
        times quantised to the T-step grid. ``cache`` is accepted for interface parity (every evaluation here is
        an event, nothing is idle). The trajectory holds the state after each event index e (rows with fewer
        events repeat their final state)."""
        steps = None if self.continuous else steps
        if steps:
            check_count("steps", steps)
        keys, y0 = start_rows(model, num_samples, seed=seed, seeds=seeds, top_p=top_p, fixed_tokens=fixed_tokens,
                              fixed_digits=fixed_digits)
        parts = in_batches(num_samples, batch_size, lambda rows: self._sample_batch(
            model, y0[rows], keys[rows], steps, temperature, top_p, draw_dtype, return_trajectory, progress))
        trajectory = None
        if return_trajectory:  # pad shorter chunks with their final state
            depth = max(len(p.trajectory) for p in parts)
            trajectory = [torch.cat([p.trajectory[min(e, len(p.trajectory) - 1)] for p in parts])
                          for e in range(depth)]
        return SampleResult(tokens=torch.cat([p.tokens for p in parts]), nfe=torch.cat([p.nfe for p in parts]),
                            idle_steps=torch.cat([p.idle_steps for p in parts]), steps=int(steps or 0),
                            forward_calls=sum(p.forward_calls for p in parts), trajectory=trajectory)

    def _sample_batch(self, model, y, keys, steps, temperature, top_p, draw_dtype, return_trajectory,
                      progress) -> SampleResult:
        n, length, ell = y.shape
        units = 1 if model.grouped else ell
        free = (y == model.mask_id).view(n, length, units, -1).any(-1)  # a unit with any masked sub-token
        times = reveal_times(model, keys, steps)
        event, event_time, count = event_schedule(times.view(n, -1), free.view(n, -1))
        event = event.view(n, length, units)
        calls, trajectory = 0, []
        depth = int(count.max()) if n else 0
        for e in tqdm(range(depth), disable=not progress, desc=self.progress_label, leave=False):
            rows = (count > e).nonzero().squeeze(-1)
            unit_on = event[rows] == e  # [m, L, U]
            reveal = (unit_on.unsqueeze(-1).expand(-1, length, units, ell // units).reshape(len(rows), length, ell)
                      & (y[rows] == model.mask_id))
            y[rows] = self._event(for_rows(model, rows), y[rows], reveal, keys[rows], e, event_time[rows, e], temperature, top_p,
                                  draw_dtype)
            calls += 1
            if return_trajectory:
                trajectory.append(y.to("cpu", copy=True))  # a copy: on CPU .cpu() aliases y
        idle = torch.zeros(n, dtype=torch.long, device=y.device)
        return finish(self.name, model, y, count, idle, int(steps or 0), calls,
                      trajectory if return_trajectory else None)

    def _event(self, model, y, reveal, keys, e: int, t: torch.Tensor, temperature, top_p, draw_dtype):
        """One batched forward pass at the rows' own times t [m]; f(x̂) digits for the event's units."""
        pos = reveal.any(-1)
        log_p = model.log_probs_at(y, pos, t.to(torch.float32))  # [N, C]
        if callable(temperature):  # τ(t) per row, repeated over the row's revealing positions
            taus = [check_temperature(temperature(float(s)), float(s)) for s in t.tolist()]
            tau = torch.tensor(taus, dtype=log_p.dtype, device=y.device).repeat_interleave(pos.sum(-1))[:, None]
        else:
            tau = check_temperature(temperature, float(t[0]))
        scores = filter_log_probs(log_p, tau, top_p)
        x_hat = draw_tokens(scores, keys, e, pos, draw_dtype, EVENT_TOKEN)
        return ancestral_update(x_hat, y, reveal, model.map)


BUILTIN_FIRST_HITTING = [FirstHittingSampler]
