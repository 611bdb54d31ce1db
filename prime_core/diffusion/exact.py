"""Exact likelihoods and exact bound values for problems small enough to enumerate (DESIGN §2.4).

With a time-independent denoiser the continuous-time model reveals its N reveal units (N = L·ℓ sub-tokens, or
L tokens under grouped noise) in a uniformly random order, each from its marginal given what is revealed, so
    p_θ(y₀) = E_{order π} Π_k p_θ(y₀^{π_k} | y₀^{π_<k}),
computed here by dynamic programming over the 2^N revealed sets R. The T-step sampler's p_T(y₀) is a similar DP over
steps, in which a step reveals a set R′ \\ R of units at once (jointly within a token: a subset marginal). The bounds
of `losses` are evaluated in closed form over the same sets: a set of m masked units carries weight
∫₀¹ a^(N−m)(1−a)^(m−1) da = B(N−m+1, m) in the continuous NELBO. Tests compare them: every bound must be ≥ the exact
NLL of the model it bounds, and the model's probabilities must sum to 1 over valid sequences.

Every function takes a batch of sequences tokens [B, L] and returns [B] (float64): the model runs once per
revealed set R on all rows together (rows in chunks of `ROWS`), and the DPs are vectorised over rows.
"""

from __future__ import annotations

import itertools
import math

import torch

from .heads import subset_log_marginal
from .unit_losses import step_reveal_log_probs

MAX_UNITS = 10
ROWS = 4096  # sequences per model call
PAIR_ELEMENTS = 1 << 22  # K·B·L·C elements per batched subset-marginal call


def reveal_units(model) -> torch.Tensor:
    """unit → which sub-tokens it covers: bool [N, L, ℓ]."""
    length, ell = model.length, model.ell
    if model.grouped:
        units = torch.zeros(length, length, ell, dtype=torch.bool)
        for i in range(length):
            units[i, i, :] = True
        return units
    return torch.eye(length * ell, dtype=torch.bool).view(length * ell, length, ell)


def revealed_sets(units: torch.Tensor) -> torch.Tensor:
    """bool [2^N, L, ℓ]: the sub-tokens revealed by every set R (bit u of R set ⇔ unit u revealed)."""
    n = units.shape[0]
    bits = (torch.arange(2**n).unsqueeze(-1) >> torch.arange(n)) & 1  # [2^N, N]
    return (bits.bool().view(2**n, n, 1, 1) & units.unsqueeze(0)).any(1)


def _by_rows(fn):
    """Run ``fn(model, tokens, *args)`` on chunks of `ROWS` sequences and concatenate the [B] results."""
    def run(model, tokens: torch.Tensor, *args) -> torch.Tensor:
        return torch.cat([fn(model, chunk, *args) for chunk in tokens.split(ROWS)])
    run.__name__, run.__doc__ = fn.__name__, fn.__doc__
    return run


class _Enumeration:
    """The revealed sets R of a problem and log p_θ(· | y_R) for a batch of sequences, one set at a time."""

    def __init__(self, model, tokens: torch.Tensor):
        if model.time_conditioned:
            raise ValueError("exact likelihoods need a time-independent denoiser (time_conditioned=False)")
        self.model = model
        self.units = reveal_units(model)
        self.n = self.units.shape[0]
        if self.n > MAX_UNITS:
            raise ValueError(f"exact enumeration supports at most {MAX_UNITS} reveal units, got N={self.n}")
        self.sets = 2**self.n
        self.full = self.sets - 1
        self.tokens = tokens  # [B, L]
        self.y0 = model.map.encode(tokens.view(len(tokens), -1))  # [B, L, ℓ]
        self.revealed = revealed_sets(self.units)  # [2^N, L, ℓ]
        self.size = torch.tensor([bin(r).count("1") for r in range(self.sets)])

    @torch.no_grad()
    def log_probs(self, r: int, training: bool = False) -> torch.Tensor:
        """log p_θ(x | y_R) [B, L, C] float64 (the training distribution when ``training``)."""
        y = self.y0.masked_fill(~self.revealed[r], self.model.mask_id)
        fn = self.model.training_log_probs if training else self.model.log_probs
        return fn(y, None).double()

    @torch.no_grad()
    def subset_log_probs(self, log_p: torch.Tensor, subsets: torch.Tensor) -> torch.Tensor:
        """Σ_i log p_θ(y₀ on token i's sub-tokens in S_k | y_R), jointly within a token, for K subsets
        S_k [K, L, ℓ] of the masked sub-tokens: [K, B]."""
        per_call = max(1, PAIR_ELEMENTS // max(1, log_p.numel()))
        out = []
        for chunk in subsets.split(per_call):
            k = len(chunk)
            lp = log_p.unsqueeze(0).expand(k, *log_p.shape)
            targets = self.y0.unsqueeze(0).expand(k, *self.y0.shape)
            subset = chunk.unsqueeze(1).expand(k, *self.y0.shape)
            out.append(subset_log_marginal(lp, targets, subset, self.model.map).sum(-1))
        return torch.cat(out)

    def singles(self) -> torch.Tensor:
        """log p_θ(y₀ᵘ | y_R) for every set R and unit u ∉ R: [2^N, N, B] (nan where u ∈ R)."""
        out = torch.full((self.sets, self.n, len(self.tokens)), math.nan, dtype=torch.float64)
        for r in range(self.full):
            free = [u for u in range(self.n) if not r >> u & 1]
            out[r, free] = self.subset_log_probs(self.log_probs(r), self.units[free])
        return out

    def transitions(self):
        """All pairs R ⊆ R′ (sorted by R) as index tensors [P] and log p_θ(y₀ on R′ \\ R | y_R) [P, B]
        (exactly 0 when R′ = R)."""
        r, r2 = torch.arange(self.sets).view(-1, 1), torch.arange(self.sets).view(1, -1)
        sets, sets2 = ((r & r2) == r).nonzero(as_tuple=True)
        pair = torch.zeros(len(sets), len(self.tokens), dtype=torch.float64)
        starts = torch.searchsorted(sets, torch.arange(self.sets + 1))
        for s in range(self.full):
            lo, hi = int(starts[s]) + 1, int(starts[s + 1])  # skip R′ = R, the first superset of R
            new = self.revealed[sets2[lo:hi]] & ~self.revealed[s]
            pair[lo:hi] = self.subset_log_probs(self.log_probs(s), new)
        return sets, sets2, pair


@_by_rows
def exact_log_likelihood(model, tokens: torch.Tensor) -> torch.Tensor:
    """log p_θ(x) of the continuous-time model for each row of tokens [B, L] → [B] (float64)."""
    e = _Enumeration(model, tokens)
    singles = e.singles()
    log_reach = torch.full((e.sets, len(tokens)), -math.inf, dtype=torch.float64)
    log_reach[0] = 0.0
    for r in sorted(range(e.full), key=lambda s: e.size[s]):
        choose = -math.log(e.n - int(e.size[r]))  # next unit uniform among the unrevealed
        for u in range(e.n):
            if not r >> u & 1:
                nxt = r | (1 << u)
                log_reach[nxt] = torch.logaddexp(log_reach[nxt], log_reach[r] + choose + singles[r, u])
    return log_reach[e.full]


def mask_set_weight(n: int, m: int) -> float:
    """B(N−m+1, m) = (N−m)!(m−1)!/N!: the continuous-time weight of one set of m masked units."""
    return math.factorial(n - m) * math.factorial(m - 1) / math.factorial(n)


@_by_rows
def exact_nelbo(model, tokens: torch.Tensor) -> torch.Tensor:
    """The continuous-time NELBO (`losses.nelbo`'s expectation) in closed form: [B]."""
    e = _Enumeration(model, tokens)
    singles = e.singles()
    total = torch.zeros(len(tokens), dtype=torch.float64)
    for r in range(e.full):
        free = [u for u in range(e.n) if not r >> u & 1]
        total -= mask_set_weight(e.n, len(free)) * singles[r, free].sum(0)
    return total


@_by_rows
def exact_joint_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """The paper's joint loss (`losses.joint_loss`'s expectation over t ∈ (0, 1]) in closed form: [B]."""
    e = _Enumeration(model, tokens)
    total = torch.zeros(len(tokens), dtype=torch.float64)
    for r in range(e.full):
        nll = -e.log_probs(r, training=True).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # [B, L]
        touched = ~e.revealed[r].all(-1)  # [L]
        total += mask_set_weight(e.n, e.n - int(e.size[r])) * nll[:, touched].sum(-1)
    return total


def _step_log_weights(e, sets, sets2, reveal_p: float) -> torch.Tensor:
    """log of r^{|R′\\R|} (1−r)^{N−|R′|}: which still-masked units are revealed in a step: [P]."""
    new = (e.size[sets2] - e.size[sets]).double()
    stay = (e.n - e.size[sets2]).double()
    return torch.xlogy(new, torch.tensor(reveal_p, dtype=torch.float64)) + \
        torch.xlogy(stay, torch.tensor(1.0 - reveal_p, dtype=torch.float64))


@_by_rows
def exact_tstep_log_likelihood(model, tokens: torch.Tensor, steps: int) -> torch.Tensor:
    """log p_T(x) of the T-step ancestral sampler (time-independent denoiser): [B]."""
    alphas = model.schedule.step_alphas(steps)
    e = _Enumeration(model, tokens)
    sets, sets2, pair = e.transitions()
    log_state = torch.full((e.sets, len(tokens)), -math.inf, dtype=torch.float64)
    log_state[0] = 0.0
    for k in range(steps):
        r = float((alphas[k + 1] - alphas[k]) / (1.0 - alphas[k]))
        contrib = log_state[sets] + _step_log_weights(e, sets, sets2, r).unsqueeze(-1) + pair  # [P, B]
        log_state = _scatter_logsumexp(contrib, sets2, e.sets)
    return log_state[e.full]


def _scatter_logsumexp(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """out[s] = logsumexp over {p : index[p] = s} of values[p]: values [P, B] → [size, B]."""
    shape = (size, *values.shape[1:])
    idx = index.view(-1, *[1] * (values.dim() - 1)).expand_as(values)
    top = torch.full(shape, -math.inf, dtype=values.dtype).scatter_reduce(0, idx, values, reduce="amax")
    safe = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    total = torch.zeros(shape, dtype=values.dtype).index_add(0, index, (values - safe[index]).exp())
    return safe + total.log()


STEP_CHUNK = 1 << 14  # grid steps per vectorised block of `tstep_pair_weights`


def tstep_pair_weights(e, sets, sets2, alphas: torch.Tensor) -> torch.Tensor:
    """Σ_k q_k(R) · P(R → R′ in step k) for every pair R ⊆ R′: [P] (float64), with q_k(R) = ᾱ_k^|R| (1 − ᾱ_k)^(N−|R|)
    and P(R → R′) = r_k^|R′\\R| (1 − r_k)^(N−|R′|). The weight depends on the pair only through (m, m′) =
    (|R|, |R′|), so it is summed over k once per size class ((N+1)² of them, not one per pair), vectorised over
    blocks of steps, in log space with log1p: T = 10⁶ costs ~10⁶·(N+1)² exps (seconds) and r_k ~ 1/T loses no precision."""
    n = e.n
    m = torch.arange(n + 1, dtype=torch.float64).view(-1, 1)  # |R|
    m2 = torch.arange(n + 1, dtype=torch.float64).view(1, -1)  # |R′|
    m, m2 = m.expand(n + 1, n + 1).flatten(), m2.expand(n + 1, n + 1).flatten()
    valid = m2 >= m
    m, m2 = m[valid], m2[valid]
    counts = torch.stack([m, n - m, m2 - m, n - m2])  # [4, classes]: exponents of ᾱ, 1 − ᾱ, r, 1 − r
    total = torch.zeros(len(m), dtype=torch.float64)
    steps = len(alphas) - 1
    for lo in range(0, steps, STEP_CHUNK):
        k = torch.arange(lo, min(steps, lo + STEP_CHUNK))
        a = alphas[k]
        logs = torch.stack([a.log(), torch.log1p(-a), *step_reveal_log_probs(alphas, k)], dim=-1)  # [K, 4]
        # log 0 = −∞ → a finite −10³⁰⁰, so a zero exponent gives 0 · (−10³⁰⁰) = 0 (x⁰ = 1) in the matmul, and a
        # positive one stays ≤ −10³⁰⁰ (exp → 0): the 0 · (−∞) = nan of a plain product never occurs
        log_w = logs.clamp(min=-1e300) @ counts  # [K, classes]
        total += log_w.exp().sum(0)
    by_class = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    by_class[m.long(), m2.long()] = total
    return by_class[e.size[sets], e.size[sets2]]


@_by_rows
def exact_tstep_nelbo(model, tokens: torch.Tensor, steps: int) -> torch.Tensor:
    """The T-step NELBO (`losses.tstep_nelbo`'s expectation) in closed form, at any T: [B]
    = −Σ_k Σ_{R ⊆ R′} q_k(R) P(R → R′ in step k) log p_θ(y₀ on R′ \\ R | y_R) (the per-step terms times T times
    the 1/T chance of drawing step k)."""
    alphas = model.schedule.step_alphas(steps)
    e = _Enumeration(model, tokens)
    sets, sets2, pair = e.transitions()
    weight = tstep_pair_weights(e, sets, sets2, alphas)
    used = weight > 0
    return -(weight[used].unsqueeze(-1) * pair[used]).sum(0)


def all_sequences(num_classes: int, length: int) -> torch.Tensor:
    """Every sequence in {0 … C−1}^L: [C^L, L]."""
    return torch.tensor(list(itertools.product(range(num_classes), repeat=length)), dtype=torch.long)
