"""Exact likelihoods and exact bound values for problems small enough to enumerate (DESIGN §2.4).

With a time-independent denoiser the continuous-time model reveals its N reveal units (N = L·ℓ sub-tokens, or
L tokens under grouped noise) in a uniformly random order, each from its marginal given what is revealed, so
    p_θ(y₀) = E_{order π} Π_k p_θ(y₀^{π_k} | y₀^{π_<k}),
computed here by dynamic programming over the 2^N revealed sets. The T-step sampler's p_T(y₀) is a similar DP over
steps. The bounds of `losses` are evaluated in closed form over the same sets: a set of m masked units carries
weight ∫₀¹ a^(N−m)(1−a)^(m−1) da = B(N−m+1, m) in the continuous NELBO. Tests compare them: every bound must be
≥ the exact NLL of the model it bounds, and the model's probabilities must sum to 1 over valid sequences.
"""

from __future__ import annotations

import itertools
import math

import torch

from .heads import subset_log_marginal

MAX_UNITS = 10


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


class _Enumeration:
    """log p_θ(· | y_R) for every revealed set R of one sequence, and joint subset probabilities between sets."""

    def __init__(self, model, tokens: torch.Tensor):
        if model.time_conditioned:
            raise ValueError("exact likelihoods need a time-independent denoiser (time_conditioned=False)")
        self.model = model
        self.units = reveal_units(model)
        self.n = self.units.shape[0]
        if self.n > MAX_UNITS:
            raise ValueError(f"exact enumeration supports at most {MAX_UNITS} reveal units, got N={self.n}")
        self.full = 2**self.n - 1
        self.tokens = tokens
        self.y0 = model.map.encode(tokens.view(1, -1))[0]  # [L, ℓ]
        self.revealed = revealed_sets(self.units)  # [2^N, L, ℓ]
        y = self.y0.expand(2**self.n, -1, -1).masked_fill(~self.revealed, model.mask_id)
        with torch.no_grad():
            self.log_p = model.log_probs(y, None).double()  # [2^N, L, C]
            self.train_log_p = model.training_log_probs(y, None).double()
        self.size = torch.tensor([bin(r).count("1") for r in range(2**self.n)])

    def pair_log_prob(self, sets: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """Σ_i log p_θ(y₀ of token i's newly revealed sub-tokens | y_R), jointly within a token, for set pairs
        (R = sets[k], R ∪ new[k]): [K]."""
        subset = self.revealed[sets | new] & ~self.revealed[sets]
        targets = self.y0.expand(len(sets), -1, -1)
        return subset_log_marginal(self.log_p[sets], targets, subset, self.model.map).sum(-1)


def _singles(e: _Enumeration) -> torch.Tensor:
    """log p_θ(y₀ᵘ | y_R) for every set R and unit u ∉ R: [2^N, N] (nan where u ∈ R)."""
    sets = torch.arange(2**e.n).repeat_interleave(e.n)
    unit = torch.arange(e.n).repeat(2**e.n)
    new = 1 << unit
    out = torch.full((2**e.n * e.n,), math.nan, dtype=torch.float64)
    fresh = (sets & new) == 0
    out[fresh] = e.pair_log_prob(sets[fresh], new[fresh])
    return out.view(2**e.n, e.n)


def exact_log_likelihood(model, tokens: torch.Tensor) -> torch.Tensor:
    """log p_θ(x) of the continuous-time model for each row of tokens [B, L] → [B] (float64)."""
    out = []
    for row in tokens:
        e = _Enumeration(model, row)
        singles = _singles(e)
        log_reach = torch.full((2**e.n,), -math.inf, dtype=torch.float64)
        log_reach[0] = 0.0
        for r in sorted(range(2**e.n), key=lambda s: e.size[s]):
            if r == e.full or log_reach[r] == -math.inf:
                continue
            choose = -math.log(e.n - int(e.size[r]))  # next unit uniform among the unrevealed
            for u in range(e.n):
                if not r >> u & 1:
                    nxt = r | (1 << u)
                    log_reach[nxt] = torch.logaddexp(log_reach[nxt], log_reach[r] + choose + singles[r, u])
        out.append(log_reach[e.full])
    return torch.stack(out)


def mask_set_weight(n: int, m: int) -> float:
    """B(N−m+1, m) = (N−m)!(m−1)!/N!: the continuous-time weight of one set of m masked units."""
    return math.factorial(n - m) * math.factorial(m - 1) / math.factorial(n)


def exact_nelbo(model, tokens: torch.Tensor) -> torch.Tensor:
    """The continuous-time NELBO (`losses.nelbo`'s expectation) in closed form: [B]."""
    out = []
    for row in tokens:
        e = _Enumeration(model, row)
        singles = _singles(e)
        total = torch.zeros((), dtype=torch.float64)
        for r in range(2**e.n - 1):
            m = e.n - int(e.size[r])
            total = total - mask_set_weight(e.n, m) * singles[r][~torch.isnan(singles[r])].sum()
        out.append(total)
    return torch.stack(out)


def exact_joint_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """The paper's joint loss (`losses.joint_loss`'s expectation over t ∈ (0, 1]) in closed form: [B]."""
    out = []
    for row in tokens:
        e = _Enumeration(model, row)
        nll = -e.train_log_p.gather(-1, row.view(1, -1, 1).expand(2**e.n, -1, 1)).squeeze(-1)  # [2^N, L]
        total = torch.zeros((), dtype=torch.float64)
        for r in range(2**e.n - 1):
            touched = ~e.revealed[r].all(-1)
            total = total + mask_set_weight(e.n, e.n - int(e.size[r])) * nll[r][touched].sum()
        out.append(total)
    return torch.stack(out)


def _step_transitions(e: _Enumeration):
    """All pairs R ⊆ R′ as index tensors plus log-prob of revealing exactly R′ \\ R jointly."""
    pairs = [(r, r2) for r in range(2**e.n) for r2 in range(2**e.n) if r & r2 == r]
    sets = torch.tensor([p[0] for p in pairs])
    sets2 = torch.tensor([p[1] for p in pairs])
    return sets, sets2, e.pair_log_prob(sets, sets2 & ~sets)


def _step_log_weights(e, sets, sets2, reveal_p: float) -> torch.Tensor:
    """log of r^{|R′\\R|} (1−r)^{N−|R′|}: which still-masked units are revealed in a step."""
    new = (e.size[sets2] - e.size[sets]).double()
    stay = (e.n - e.size[sets2]).double()
    with torch.no_grad():
        return torch.xlogy(new, torch.tensor(reveal_p, dtype=torch.float64)) + \
            torch.xlogy(stay, torch.tensor(1.0 - reveal_p, dtype=torch.float64))


def exact_tstep_log_likelihood(model, tokens: torch.Tensor, steps: int) -> torch.Tensor:
    """log p_T(x) of the T-step ancestral sampler (time-independent denoiser): [B]."""
    alphas = model.schedule.step_alphas(steps)
    out = []
    for row in tokens:
        e = _Enumeration(model, row)
        sets, sets2, pair = _step_transitions(e)
        log_state = torch.full((2**e.n,), -math.inf, dtype=torch.float64)
        log_state[0] = 0.0
        for k in range(steps):
            r = float((alphas[k + 1] - alphas[k]) / (1.0 - alphas[k]))
            contrib = log_state[sets] + _step_log_weights(e, sets, sets2, r) + pair
            log_state = _scatter_logsumexp(contrib, sets2, 2**e.n)
        out.append(log_state[e.full])
    return torch.stack(out)


def _scatter_logsumexp(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    top = torch.full((size,), -math.inf, dtype=values.dtype).scatter_reduce(0, index, values, reduce="amax")
    safe = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    total = torch.zeros(size, dtype=values.dtype).index_add(0, index, (values - safe[index]).exp())
    return safe + total.log()


def exact_tstep_nelbo(model, tokens: torch.Tensor, steps: int) -> torch.Tensor:
    """The T-step NELBO (`losses.tstep_nelbo`'s expectation) in closed form: [B]."""
    alphas = model.schedule.step_alphas(steps)
    out = []
    for row in tokens:
        e = _Enumeration(model, row)
        sets, sets2, pair = _step_transitions(e)
        total = torch.zeros((), dtype=torch.float64)
        for k in range(steps):
            a = alphas[k]
            r = float((alphas[k + 1] - a) / (1.0 - a))
            log_q = torch.xlogy(e.size[sets].double(), a) + torch.xlogy((e.n - e.size[sets]).double(), 1.0 - a)
            weight = (log_q + _step_log_weights(e, sets, sets2, r)).exp()
            finite = weight > 0
            total = total - (weight[finite] * pair[finite]).sum()
        out.append(total)
    return torch.stack(out)


def all_sequences(num_classes: int, length: int) -> torch.Tensor:
    """Every sequence in {0 … C−1}^L: [C^L, L]."""
    return torch.tensor(list(itertools.product(range(num_classes), repeat=length)), dtype=torch.long)
