"""Ancestral sampler at the sub-token level (DESIGN §2.5).

Grid t_k = 1 − k/T with ᾱ_k = α(t_k) clamped so ᾱ_0 = 0 and ᾱ_T = 1. In step k (from t = t_k to s = t_{k+1})
each masked reveal unit is revealed with probability r_k = (ᾱ_{k+1} − ᾱ_k)/(1 − ᾱ_k) (r = 1 in the last step);
a revealed unit takes its digits from f(x̂), x̂ ~ p_θ(· | y_t) drawn exactly by inverse CDF (`draw_tokens`: one
keyed uniform per position) after optional temperature and nucleus filtering. Observed sub-tokens never change and p_θ is supported on V(y_t), so every output token is < C.

Idle steps: which units are revealed does not depend on p_θ, so it is drawn first and the backbone runs only on
the rows that reveal something in this step. Without re-masking (σ ≡ 0, r_k as above) a unit's reveal step is
drawn once, up front: P(step k) = ᾱ_{k+1} − ᾱ_k, i.e. k = the first step with ᾱ_{k+1} ≥ U for one keyed uniform U
per unit (stream REVEAL_STEP) — the same law as the per-step coin flips, at one uniform per unit per run instead of
one per unit per step (`reveal_steps`). A row whose step reveals nothing costs no forward pass (its cached
p is never needed). With ``cache=False`` every row is evaluated every step (the baseline; same tokens).

Randomness (`prime_core.sampling.counter_rng`): every uniform is Philox4x32-10 of the row key and a counter, drawn for the
whole batch in one vectorised call on ``model.device`` — the reveal uniform of unit j at position i in step k is
keyed by (row key, k, i, j, stream REVEAL) (the planned reveal step's by (row key, 0, i, j, REVEAL_STEP)), the token draw's uniform at position i by (row key, k, i, 0, stream
TOKEN), the corrector's re-mask uniforms by stream REMASK. A number never depends on which other rows, positions or steps
are drawn, so a batch equals its members sampled one by one, and chunking, batch size and the idle-step cache
never change a sample. Row keys are seed·2³² + i (row i), or explicit 64-bit ``seeds``. The state y, the draws,
the head, filtering and the token draw all stay on ``model.device``; only the final tokens (and the trajectory, when
asked) are copied to the host.
"""

from __future__ import annotations

import math


import attrs
import torch
from tqdm.auto import tqdm

from .counter_rng import REMASK, REVEAL, REVEAL_STEP, TOKEN, categorical, key_words, row_keys, uniforms
from ..errors import NonFiniteError, check_count
from ..diffusion.heads import consistent
from ..interfaces import SampleResult, Sampler, Temperature  # noqa: F401  (SampleResult: re-exported)

def reveal_probability(alpha_t: float, alpha_s: float) -> float:
    """r = (α_s − α_t)/(1 − α_t): chance that a still-masked unit is revealed in step [s, t]."""
    return 1.0 if alpha_t >= 1.0 else float((alpha_s - alpha_t) / (1.0 - alpha_t))


#: τ below this is the τ → 0 limit: the argmax of p_θ (greedy; exact ties at the maximum stay equally likely)
GREEDY_TEMPERATURE = 1e-6


def filter_scores(log_p: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor, nucleus: bool = True,
                  dtype: torch.dtype = torch.float64, stable: bool = True) -> torch.Tensor:
    """Temperature and nucleus filtering as tensor ops only (no branch on a value), shared by the eager samplers
    (`filter_log_probs`) and the exported step (`export.step`), so both keep the same tokens.

    log_p [N, C] (−inf outside V(y_t)); temperature τ and top_p broadcastable to [N, 1]. Computed in ``dtype``
    (float64; float32 only in graphs for runtimes without float64, e.g. TensorRT). Returns scores [N, C] in dtype:
      τ ≥ `GREEDY_TEMPERATURE`: (log p − max log p) / τ — the shift leaves softmax unchanged and keeps the top
        score at 0, so no τ overflows to −inf everywhere (τ = 1e-45 drew invalid ids before);
      τ < `GREEDY_TEMPERATURE`: the τ → 0 limit, 0 at the maximum of log p and −inf elsewhere (argmax);
      nucleus (where top_p < 1): sort by probability, descending, ties by the lower token id (a stable sort, the
        order ONNX TopK uses too), and keep the shortest prefix whose mass reaches top_p: token k of the order is
        dropped iff the mass before it ≥ top_p; the first (most probable) token is always kept, so any top_p > 0,
        even one that rounds to 0 in float32, leaves exactly the argmax.
    ``stable=False`` only in a traced graph: its sort becomes ONNX TopK, which puts equal values lower index first
    by specification — the order of torch's stable sort (a stable sort has no ONNX translation)."""
    log_p = log_p.to(dtype)
    tau, top_p = temperature.to(dtype), top_p.to(dtype)
    top = log_p.amax(-1, keepdim=True)
    greedy = tau < GREEDY_TEMPERATURE
    scores = (log_p - top) / torch.where(greedy, torch.ones_like(tau), tau)
    scores = torch.where(greedy & (log_p < top), torch.full_like(scores, float("-inf")), scores)
    if not nucleus:
        return scores
    probs = torch.softmax(scores, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True) if stable else \
        probs.sort(dim=-1, descending=True)  # (any `stable=` argument makes the exporter's aten.sort.stable)
    mass_before = sorted_p.cumsum(-1) - sorted_p
    rest = torch.arange(scores.shape[-1], device=scores.device) > 0  # the first token is always kept
    drop_sorted = (mass_before >= top_p) & rest & (top_p < 1.0)
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


def filter_log_probs(log_p: torch.Tensor, temperature: float | torch.Tensor = 1.0, top_p: float = 1.0) -> torch.Tensor:
    """Temperature τ then nucleus (keep the smallest set of tokens whose mass reaches top_p): `filter_scores` in
    float64 with τ and top_p rounded to float32 (as an exported step reads them). τ is a number > 0, or a tensor
    broadcastable to log_p (e.g. [n, 1], one τ per row; checked by the caller). Returns float64 scores [N, C]."""
    if not torch.is_tensor(temperature) and not (temperature > 0 and math.isfinite(temperature)):  # nan fails too
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    # float32, as an exported step's inputs: both paths filter with the same τ and top_p
    tau = torch.as_tensor(temperature, dtype=torch.float32, device=log_p.device)
    p = torch.tensor(top_p, dtype=torch.float32, device=log_p.device)
    return filter_scores(log_p, tau, p, nucleus=top_p < 1.0)


def reveal_uniforms(keys: torch.Tensor, step: int, length: int, units: int, stream: int = REVEAL) -> torch.Tensor:
    """float64 uniforms [n, L, U] of step k: unit (i, j) keyed by (row key, k, element i·U + j, ``stream``)."""
    zero = torch.zeros(len(keys), dtype=torch.long, device=keys.device)
    return uniforms(keys, step, zero, length * units, stream, torch.float64).view(len(keys), length, units)


def reveal_steps(keys: torch.Tensor, alphas: torch.Tensor, length: int, units: int) -> torch.Tensor:
    """The step k in which each unit is revealed, for a sampler without re-masking: [n, L, U] int64.

    With P(unit still masked after step k) = 1 − ᾱ_{k+1}, the reveal step is k with probability ᾱ_{k+1} − ᾱ_k;
    k = min{k : ᾱ_{k+1} ≥ U} for U ∈ (0, 1) keyed by (row key, 0, element i·U + j, REVEAL_STEP). ᾱ_T = 1, so
    every unit gets a step < T, and a step with ᾱ_{k+1} = ᾱ_k gets none."""
    u = reveal_uniforms(keys, 0, length, units, REVEAL_STEP)
    return torch.bucketize(u.contiguous(), alphas[1:].to(u.device, torch.float64), right=False)


def _per_position(keys: torch.Tensor, step, where: torch.Tensor):
    """(keys [N, 2], step k or [N], positions i [N]) of the N positions ``where`` [m, L] marks, row-major."""
    rows, cols = where.nonzero(as_tuple=True)
    step = torch.as_tensor(step, dtype=torch.long, device=keys.device)
    return keys[rows], (step[rows] if step.dim() else step), cols


def token_uniforms(keys: torch.Tensor, step, where: torch.Tensor, dtype: torch.dtype,
                   stream: int = TOKEN) -> torch.Tensor:
    """The token draw's uniforms u [N], one per position ``where`` [m, L] (bool) marks, row-major: position i of
    row r keyed by (key_r, k, i, 0, ``stream``); ``step`` an int k or one k per row [m]. (An exported step takes
    these as its input and draws x̂ = `inverse_cdf`(scores, u) in the graph.)"""
    k, s, i = _per_position(keys, step, where)
    return uniforms(k, s, i, 1, stream, dtype)[:, 0]


def draw_tokens(scores: torch.Tensor, keys: torch.Tensor, step, where: torch.Tensor, dtype: torch.dtype,
                stream: int = TOKEN) -> torch.Tensor:
    """x̂ [N] ~ softmax(scores) at the N positions ``where`` [m, L] marks (row-major, as ``scores`` [N, C]): the
    keyed inverse-CDF draw `prime_core.sampling.counter_rng.categorical` in precision ``dtype`` (the ``draw_dtype``
    option), one uniform per position keyed by (row key, ``step``, position, ``stream``). Every sampler that
    draws tokens (ancestral, first-hitting, runtimes, plugins) calls this, so they share one definition."""
    if bool(torch.isnan(scores).any()):  # NaN log-probabilities would draw id −1: say why, in one line
        raise NonFiniteError("the model's log-probabilities are not finite (NaN): its weights diverged or are "
                             "damaged; nothing was sampled")
    k, s, i = _per_position(keys, step, where)
    return categorical(scores, k, s, i, stream, dtype)


def ancestral_update(x_hat: torch.Tensor, y_t: torch.Tensor, reveal: torch.Tensor, subtoken_map) -> torch.Tensor:
    """The pure update of one step. x_hat [n] the drawn tokens at the n positions that reveal something
    (row-major), y_t [B, L, ℓ], reveal [B, L, ℓ] bool. Revealed sub-tokens take f(x̂)'s digits; returns y_s."""
    pos = reveal.any(-1)
    digits = subtoken_map.encode(x_hat)
    y_s = y_t.clone()
    y_s[pos] = torch.where(reveal[pos], digits, y_t[pos])
    return y_s


def for_rows(model, rows: torch.Tensor):
    """``model`` as seen by some rows of the batch: a model with per-row state (a block model's KV cache of each
    row's clean prefix, `prime_core.sampling.blocks.BlockView`) narrows it to ``rows`` [m]; others return itself.
    Samplers pass the model through this wherever they evaluate a subset of rows (the idle-step cache)."""
    select = getattr(model, "for_rows", None)
    return model if select is None else select(rows)


def row_seeds(num_samples: int, seed: int) -> list[int]:
    """Row keys seed·2³² + i, i = 0 … n−1 (`prime_core.sampling.counter_rng.row_keys`): distinct for every seed < 2³²."""
    return row_keys(num_samples, seed)


def model_device(model) -> torch.device:
    """Where the sampler's state lives: the model's device (CPU for a graph's metadata stand-in)."""
    return torch.device(getattr(model, "device", "cpu"))


def check_temperature(tau, t: float) -> float:
    if not (tau > 0 and math.isfinite(tau)):  # nan and inf fail here too
        raise ValueError(f"temperature must be a finite number > 0, got {tau} at t = {t:.4g}")
    return float(tau)


def initial_state(model, num_samples: int, fixed_tokens: torch.Tensor | None = None,
                  fixed_digits: torch.Tensor | None = None) -> torch.Tensor:
    """All-mask start [N, L, ℓ], with prefix / infill constraints: fixed_tokens [N, L] (−1 = free) fixes whole
    tokens, fixed_digits [N, L, ℓ] (−1 = free) fixes single digits."""
    shape = (num_samples, model.length, model.ell)
    y = torch.full(shape, model.mask_id, dtype=torch.long)
    if fixed_tokens is not None:
        fixed_tokens = torch.as_tensor(fixed_tokens, dtype=torch.long).expand(num_samples, model.length)
        keep = fixed_tokens >= 0
        model.map.check_tokens(fixed_tokens[keep])
        y[keep] = model.map.encode(fixed_tokens[keep])
    if fixed_digits is not None:
        fixed_digits = torch.as_tensor(fixed_digits, dtype=torch.long).expand(*shape)
        keep = fixed_digits >= 0
        if keep.any() and int(fixed_digits[keep].max()) >= model.base:
            raise ValueError(f"fixed digits must lie in [0, {model.base - 1}] (b={model.base}) or be −1 (free)")
        y[keep] = fixed_digits[keep]
    if not consistent(y, model.map).any(-1).all():
        raise ValueError("fixed digits admit no valid token (every code they allow is ≥ C)")
    return y


def start_rows(model, num_samples: int, *, seed: int, seeds, top_p: float, fixed_tokens=None,
               fixed_digits=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The argument checks every keyed sampler makes, then its rows: (row keys [N, 2] from ``seeds`` — default
    seed·2³² + i —, the start state y [N, L, ℓ] with the fixed tokens / digits), both on the model's device."""
    check_count("num_samples", num_samples)
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    seeds = row_seeds(num_samples, seed) if seeds is None else list(seeds)
    if len(seeds) != num_samples:
        raise ValueError(f"got {len(seeds)} seeds for {num_samples} samples")
    device = model_device(model)
    return key_words(seeds, device), initial_state(model, num_samples, fixed_tokens, fixed_digits).to(device)


def in_batches(num_samples: int, batch_size: int | None, run) -> list:
    """``run(rows)`` for consecutive slices of at most ``batch_size`` rows (None: all at once)."""
    batch_size = batch_size or num_samples
    return [run(slice(i, i + batch_size)) for i in range(0, num_samples, batch_size)]


@attrs.frozen
class Step:
    """What a reveal update needs to know of step k (from t = t_k to s = t_{k+1})."""

    t: float
    alpha_t: float  # ᾱ_k
    alpha_s: float  # ᾱ_{k+1}
    r: float  # reveal probability of a masked unit
    temperature: float
    top_p: float
    draw_dtype: torch.dtype  # precision of the token draw
    index: int = 0  # k: the step counter of the keyed noise


class AncestralSampler(Sampler):
    """The loop of the module docstring. Subclasses change the grid (`step_grid`), the per-step probabilities
    (`step_probabilities`, e.g. a re-masking corrector) or how revealed digits are drawn (`reveal`, e.g. an
    exported graph); the keyed noise, the idle-step cache and the NFE accounting stay this class's."""

    name = "ancestral"
    progress_label = "sampling"

    @torch.no_grad()
    def sample(self, model, num_samples: int, *, steps: int = 128, seed: int = 0,
               seeds: list[int] | None = None, temperature: Temperature = 1.0, top_p: float = 1.0,
               draw_dtype: torch.dtype = torch.float32, cache: bool = True, batch_size: int | None = None,
               fixed_tokens: torch.Tensor | None = None, fixed_digits: torch.Tensor | None = None,
               return_trajectory: bool = False, progress: bool = False) -> SampleResult:
        """Draw ``num_samples`` sequences in ``steps`` reveal steps (see module docstring).

        seeds: explicit 64-bit row keys (default seed·2³² + i); temperature: a float, or τ(t) as a callable of
        t ∈ [0, 1] (e.g. a·t^b + c); top_p ∈ (0, 1]; draw_dtype = precision of the categorical draw
        (float64 avoids float32's truncated tail probabilities, which lower the entropy);
        cache=False evaluates every row each step (same tokens)."""
        check_count("steps", steps)
        keys, y0 = start_rows(model, num_samples, seed=seed, seeds=seeds, top_p=top_p, fixed_tokens=fixed_tokens,
                              fixed_digits=fixed_digits)
        parts = in_batches(num_samples, batch_size, lambda rows: self._sample_batch(
            model, y0[rows], keys[rows], steps, temperature, top_p, draw_dtype, cache, return_trajectory, progress))
        return SampleResult(
            tokens=torch.cat([p.tokens for p in parts]), nfe=torch.cat([p.nfe for p in parts]),
            idle_steps=torch.cat([p.idle_steps for p in parts]), steps=steps,
            forward_calls=sum(p.forward_calls for p in parts),
            trajectory=([torch.cat(s) for s in zip(*(p.trajectory for p in parts))] if return_trajectory else None))

    def step_grid(self, model, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(t_k, ᾱ_k) for k = 0 … T in float64: t_k = 1 − k/T, ᾱ_k = α(t_k) clamped to ᾱ_0 = 0, ᾱ_T = 1."""
        return 1.0 - torch.arange(steps + 1, dtype=torch.float64) / steps, model.schedule.step_alphas(steps)

    def step_probabilities(self, alpha_t: float, alpha_s: float) -> tuple[float, float]:
        """(r, σ): a masked unit is revealed with probability r, an observed free one re-masked with σ (0 here)."""
        return reveal_probability(alpha_t, alpha_s), 0.0

    def reveal(self, model, y: torch.Tensor, reveal: torch.Tensor, u_reveal: torch.Tensor,
               keys: torch.Tensor, step: Step) -> torch.Tensor:
        """y_s for the evaluated rows y [m, L, ℓ] (on the model's device): one forward pass, then f(x̂) digits
        (keyed `draw_tokens`) for the units ``reveal`` [m, L, ℓ] marks. u_reveal [m, L, U] are the rows' reveal
        uniforms (unused here); keys [m, 2] the rows' key words, which key the draw of step ``step.index``."""
        pos = reveal.any(-1)
        if not bool(pos.any()):  # with cache=False a step may reveal nothing in any evaluated row
            return y
        tt = torch.full((len(y),), step.t, device=y.device)
        log_p = model.log_probs_at(y, pos, tt)  # [n, C], head at the revealing positions only
        scores = filter_log_probs(log_p, step.temperature, step.top_p)
        x_hat = draw_tokens(scores, keys, step.index, pos, step.draw_dtype)
        return ancestral_update(x_hat, y, reveal, model.map)

    def _sample_batch(self, model, y, keys, steps, temperature, top_p, draw_dtype, cache, return_trajectory,
                      progress) -> SampleResult:
        times, alphas = self.step_grid(model, steps)
        n, length, ell = y.shape
        units = 1 if model.grouped else ell
        fixed = y != model.mask_id  # prefix / infill constraints: never re-masked
        nfe = torch.zeros(n, dtype=torch.long, device=y.device)
        idle = torch.zeros(n, dtype=torch.long, device=y.device)
        calls, trajectory = 0, []
        probs = [self.step_probabilities(float(alphas[k]), float(alphas[k + 1])) for k in range(steps)]
        plan = reveal_steps(keys, alphas, length, units) if self._plain(probs, alphas) else None
        for k in tqdm(range(steps), disable=not progress, desc=self.progress_label, leave=False):
            t, a_t, a_s = float(times[k]), float(alphas[k]), float(alphas[k + 1])
            r, sigma = probs[k]
            masked = y == model.mask_id
            if plan is None:
                draws = reveal_uniforms(keys, k, length, units)  # [n, L, U], one call for the whole batch
            else:  # the planned step as a uniform that falls below r exactly in that step (exported steps use it)
                draws = torch.where(plan == k, -1.0, 2.0).to(torch.float64)
            reveal = masked & (draws < r).expand(n, length, ell)
            remask = None
            if sigma:
                back = reveal_uniforms(keys, k, length, units, REMASK)
                remask = ~masked & ~fixed & (back < sigma).expand(n, length, ell)
            active = reveal.flatten(1).any(-1)
            idle += ~active
            rows = None if not cache or bool(active.all()) else active.nonzero().squeeze(-1)
            if rows is None or len(rows):
                tau = check_temperature(temperature(t) if callable(temperature) else temperature, t)
                step = Step(t, a_t, a_s, r, tau, top_p, draw_dtype, k)
                if rows is None:  # every row evaluated: no gather / scatter
                    y = self.reveal(model, y, reveal, draws, keys, step)
                    nfe += 1
                else:
                    y[rows] = self.reveal(for_rows(model, rows), y[rows], reveal[rows], draws[rows], keys[rows], step)
                    nfe[rows] += 1
                calls += 1
            if remask is not None:
                y[remask] = model.mask_id
            if return_trajectory:
                trajectory.append(y.to("cpu", copy=True))  # a copy: on CPU .cpu() aliases y
        return finish(self.name, model, y, nfe, idle, steps, calls, trajectory if return_trajectory else None)

    @staticmethod
    def _plain(probs: list[tuple[float, float]], alphas: torch.Tensor) -> bool:
        """Whether every step is the plain reveal step (σ = 0, r_k = (ᾱ_{k+1} − ᾱ_k)/(1 − ᾱ_k)), so that each unit's
        reveal step can be drawn once (`reveal_steps`): a subclass that re-masks or changes r keeps the coins."""
        return all(sigma == 0 and r == reveal_probability(float(alphas[k]), float(alphas[k + 1]))
                   for k, (r, sigma) in enumerate(probs))


def finish(name: str, model, y: torch.Tensor, nfe, idle, steps: int, calls: int, trajectory) -> SampleResult:
    """Check that nothing is left masked and every code is < C; the tokens (and counts) come to the host."""
    if bool((y == model.mask_id).any()):
        raise RuntimeError(f"{name} sampler left masked sub-tokens")
    tokens = model.map.decode(y)
    if not bool(model.map.is_valid(tokens).all()):
        raise RuntimeError(f"{name} sampler produced an invalid code (≥ C)")
    return SampleResult(tokens=tokens.cpu(), nfe=nfe.cpu(), idle_steps=idle.cpu(), steps=steps,
                        forward_calls=calls, trajectory=trajectory)


BUILTIN_SAMPLERS = [AncestralSampler]
