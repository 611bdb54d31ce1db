"""Parameterizations (DESIGN §2.3) and marginals of a joint distribution over tokens.

V(y_tⁱ) = {x < C : f(x)_j = y_t^{i,j} for every observed digit j}. Every head's `log_probs` is a distribution
over V, so samples never contain invalid codes and never change observed digits; the heads differ in how the
backbone's logits E are turned into it and in what the paper's joint loss sees during training.

The lean path (maps with ``is_positional``, e.g. the base-b map): x = Σ_j d_j b^(ℓ−1−j), so the C scores of a
position, padded with −∞ to b^ℓ codes (codes ≥ C are invalid), reshape row-major to a [b, …, b] array (ℓ axes)
whose axis j is digit j. Then
- restriction to V(y_t): add, per digit axis j, a [b]-vector that is 0 at the observed value (everywhere when
  digit j is masked) and −∞ elsewhere — the same as indexing the observed axes — and log-softmax over the codes;
- subset marginal log p(d_S = v_S): index the axes j ∈ S at v_j, logsumexp over the others;
- digit marginals log p(d_j = v): logsumexp over every axis but j.
No [B, L, C] boolean mask is built. ℓ = 1 is a gather / log_softmax. Other maps use the generic path, which
compares the digit table f(x) [C, ℓ] with the digits (a [..., C] mask per call).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..interfaces import Parameterization, SubTokenMap

NEG_INF = float("-inf")


def consistent(y_t: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """1[x ∈ V(y_tⁱ)]: bool [B, L, C]. A digit equal to the mask symbol constrains nothing."""
    table = subtoken_map.digit_table(y_t.device)  # [C, ℓ]
    mask_id = subtoken_map.mask_id
    ok = torch.ones(*y_t.shape[:-1], subtoken_map.num_classes, dtype=torch.bool, device=y_t.device)
    for j in range(subtoken_map.ell):
        y_j = y_t[..., j:j + 1]  # [B, L, 1]
        ok &= (y_j == mask_id) | (table[:, j] == y_j)
    return ok


# ------------------------------------------------------------------------------------------ the code grid
def code_grid(scores: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """[..., C] → [..., b, …, b] (ℓ axes, axis j = digit j), padded with −∞ at the invalid codes C … b^ℓ − 1.
    Only for maps with ``is_positional`` (code x = Σ_j d_j b^(ℓ−1−j))."""
    pad = subtoken_map.num_codes - subtoken_map.num_classes
    if pad:
        scores = F.pad(scores, (0, pad), value=NEG_INF)
    return scores.view(*scores.shape[:-1], *([subtoken_map.base] * subtoken_map.ell))


def _digit_bias(y_j: torch.Tensor, subtoken_map: SubTokenMap, dtype: torch.dtype) -> torch.Tensor:
    """[...] digit values (mask m = b allowed) → [..., b]: 0 where the value is allowed, −∞ elsewhere."""
    values = torch.arange(subtoken_map.base, device=y_j.device)
    allowed = (y_j.unsqueeze(-1) == values) | (y_j.unsqueeze(-1) == subtoken_map.mask_id)
    return torch.zeros(allowed.shape, dtype=dtype, device=y_j.device).masked_fill_(~allowed, NEG_INF)


def _restricted_scores(scores: torch.Tensor, y_t: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """E + Σ_j bias_j(y_t^j) over the code grid, flattened: [..., b^ℓ] (−∞ outside V(y_t))."""
    grid = code_grid(scores, subtoken_map)
    ell, lead = subtoken_map.ell, scores.dim() - 1
    out = None
    for j in range(ell):
        bias = _digit_bias(y_t[..., j], subtoken_map, grid.dtype)  # [..., b]
        bias = bias.view(*bias.shape[:lead], *[1] * j, subtoken_map.base, *[1] * (ell - 1 - j))
        out = grid + bias if out is None else out.add_(bias)
    return out.flatten(-ell)


def restrict(scores: torch.Tensor, y_t: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """log softmax of `scores` over V(y_t) (−inf elsewhere): [..., C]."""
    scores = scores.float()
    if not subtoken_map.is_positional:
        return torch.log_softmax(scores.masked_fill(~consistent(y_t, subtoken_map), NEG_INF), dim=-1)
    log_p = torch.log_softmax(_restricted_scores(scores, y_t, subtoken_map), dim=-1)
    return log_p[..., :subtoken_map.num_classes]


class CarryOverHead(Parameterization):
    """The paper's joint + carry-over head: p_θ(x | y_t) = softmax_V(E). A fully observed token has |V| = 1."""

    name = "carry-over"
    carry_over = True

    def log_probs(self, logits, y_t, subtoken_map):
        return restrict(logits, y_t, subtoken_map)


class JointHead(Parameterization):
    """Joint softmax over all C, without carry-over in training: the joint loss sees softmax_C(E), so the
    network itself must learn which tokens agree with the observed digits. For sampling and every bound the
    distribution is conditioned on V (p ∝ softmax_C(E)·1[V]), the only way to keep observed digits fixed."""

    name = "joint"
    carry_over = False

    def log_probs(self, logits, y_t, subtoken_map):
        return restrict(logits, y_t, subtoken_map)

    def training_log_probs(self, logits, y_t, subtoken_map):
        return torch.log_softmax(logits.float(), dim=-1)


class IndependentHead(Parameterization):
    """ℓ separate b-way softmaxes (the paper's rejected baseline). The backbone emits ℓ·b logits per position;
    a token's score is Σ_j log p_j(f(x)_j), restricted to V and renormalised, so codes ≥ C are never emitted."""

    name = "independent"
    carry_over = False

    def output_dim(self, subtoken_map):
        return subtoken_map.ell * subtoken_map.base

    def digit_log_probs(self, logits, subtoken_map):
        """[B, L, ℓ·b] → per-digit log-softmax [B, L, ℓ, b]."""
        shape = (*logits.shape[:-1], subtoken_map.ell, subtoken_map.base)
        return torch.log_softmax(logits.float().reshape(shape), dim=-1)

    def token_scores(self, logits, subtoken_map):
        """Σ_j log p_j(f(x)_j) for every token x: [B, L, C] (an outer sum over the code grid when the map is
        positional, a digit-table gather otherwise)."""
        lp = self.digit_log_probs(logits, subtoken_map)
        ell, base, lead = subtoken_map.ell, subtoken_map.base, logits.dim() - 1
        if not subtoken_map.is_positional:
            table = subtoken_map.digit_table(logits.device)  # [C, ℓ]
            return sum(lp[..., j, :][..., table[:, j]] for j in range(ell))
        grid = sum(lp[..., j, :].view(*lp.shape[:lead], *[1] * j, base, *[1] * (ell - 1 - j)) for j in range(ell))
        return grid.flatten(-ell)[..., :subtoken_map.num_classes]

    def log_probs(self, logits, y_t, subtoken_map):
        return restrict(self.token_scores(logits, subtoken_map), y_t, subtoken_map)


BUILTIN_HEADS = [CarryOverHead, JointHead, IndependentHead]


# ------------------------------------------------------------------------------------------------ marginals
def subset_log_marginal(log_p: torch.Tensor, targets: torch.Tensor, subset: torch.Tensor,
                        subtoken_map: SubTokenMap) -> torch.Tensor:
    """log p(d_S = v_S | y_t) = log Σ_{x : f(x)_j = v_j ∀ j ∈ S} p(x | y_t).

    log_p [B, L, C]; targets v [B, L, ℓ] (digit values); subset S [B, L, ℓ] bool. Returns [B, L], exactly 0
    where S is empty (not log Σ_x p(x), which rounds to ±1e-7). With S = one digit this is the digit marginal;
    with S = all digits, log p(x). Positional maps: digit axes are reduced from the last, each by indexing at
    v_j (j ∈ S) or by logsumexp (j ∉ S)."""
    if not subtoken_map.is_positional:
        out = _generic_subset_log_marginal(log_p, targets, subset, subtoken_map)
    elif subtoken_map.ell == 1:
        out = log_p.gather(-1, targets.long())[..., 0]
    else:
        x = code_grid(log_p, subtoken_map)
        for j in reversed(range(subtoken_map.ell)):  # reduce the last remaining digit axis
            picked = x.gather(-1, targets[..., j].long().view(*targets.shape[:-1], *[1] * (j + 1))
                              .expand(*x.shape[:-1], 1)).squeeze(-1)
            x = torch.where(subset[..., j].view(*subset.shape[:-1], *[1] * j), picked, x.logsumexp(-1))
        out = x
    return torch.where(subset.any(-1), out, torch.zeros_like(out))


def all_subset_log_marginals(log_p: torch.Tensor, targets: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """log p(d_S = v_S | y_t) for every subset S of the ℓ digit slots: [..., 2^ℓ], index s ↔ S = {j : bit j of s}.

    log_p [..., C]; targets v [..., ℓ]. Entry 0 (S = ∅) is exactly 0. Positional maps reduce the [b, …, b] code
    grid axis by axis from the last, each axis both ways (indexed at v_j: j ∈ S; logsumexp: j ∉ S), so level k
    holds 2^k partial grids of b^(ℓ−k) codes: O(b^ℓ) work per position for b ≥ 2. Other maps loop over S."""
    lead, ell = log_p.shape[:-1], subtoken_map.ell
    if not subtoken_map.is_positional:
        out = []
        for s in range(2**ell):
            subset = torch.tensor([bool(s >> j & 1) for j in range(ell)], device=log_p.device).expand(*lead, ell)
            out.append(_generic_subset_log_marginal(log_p, targets, subset, subtoken_map))
    else:
        x = code_grid(log_p, subtoken_map).unsqueeze(-1)  # [..., b (axes 0 … ℓ−1), 1 subset so far]
        for j in reversed(range(ell)):  # axis j sits at dim −2; subsets of the digits > j along dim −1
            index = targets[..., j].long().view(*lead, *[1] * (j + 2)).expand(*x.shape[:-2], 1, x.shape[-1])
            picked = x.gather(-2, index).squeeze(-2)
            x = torch.stack([x.logsumexp(-2), picked], dim=-1).flatten(-2)  # new index = old · 2 + 1[j ∈ S]
        out = list(x.unbind(-1))
    out[0] = torch.zeros_like(out[0])
    return torch.stack(out, dim=-1)


def _generic_subset_log_marginal(log_p, targets, subset, subtoken_map):
    """Any map: mask the tokens whose digits disagree with v on S (the digit table f(x) [C, ℓ]), logsumexp."""
    table = subtoken_map.digit_table(log_p.device)
    keep = torch.ones_like(log_p, dtype=torch.bool)
    for j in range(subtoken_map.ell):
        keep &= ~subset[..., j:j + 1] | (table[:, j] == targets[..., j:j + 1])
    return torch.logsumexp(log_p.masked_fill(~keep, NEG_INF), dim=-1)


def digit_log_marginal_at(log_p: torch.Tensor, targets: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """log p(d_j = v_j | y_t) for each digit slot j at the given values v [..., ℓ]: [..., ℓ] (the NELBO's per-digit
    terms). Positional maps: the slice of the code grid at v_j on axis j (b^(ℓ−1) codes) is gathered and
    logsumexp-reduced, and the backward pass scatters exp(log p(x) − log p(d_j = v_j)) into one gradient buffer,
    so no [..., C] temporaries are kept besides it; other maps gather from `digit_log_marginals`."""
    if not subtoken_map.is_positional:
        return digit_log_marginals(log_p, subtoken_map).gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    if subtoken_map.ell == 1:
        return log_p.gather(-1, targets.long())
    return _DigitMarginalAt.apply(log_p, targets.long(), subtoken_map)


def _grid_slice_index(grid: torch.Tensor, targets: torch.Tensor, j: int, lead: int) -> torch.Tensor:
    """Index for gathering the grid with digit axis j moved last at v_j: [..., b^(ℓ−1), 1] (an expanded view)."""
    shape = grid.movedim(lead + j, -1).shape
    return targets[..., j].view(*targets.shape[:-1], *[1] * (len(shape) - lead)).expand(*shape[:-1], 1)


class _DigitMarginalAt(torch.autograd.Function):
    """Custom backward of `digit_log_marginal_at` for positional maps (see there)."""

    @staticmethod
    def forward(ctx, log_p, targets, subtoken_map):
        grid, lead = code_grid(log_p, subtoken_map), log_p.dim() - 1
        out = []
        for j in range(subtoken_map.ell):
            moved = grid.movedim(lead + j, -1)
            part = moved.gather(-1, _grid_slice_index(grid, targets, j, lead)).squeeze(-1)  # [..., b, …] (ℓ−1 axes)
            out.append(part.flatten(lead).logsumexp(-1))
        result = torch.stack(out, dim=-1)
        ctx.save_for_backward(log_p, targets, result)
        ctx.subtoken_map = subtoken_map
        return result

    @staticmethod
    def backward(ctx, grad_out):
        log_p, targets, result = ctx.saved_tensors
        m, lead = ctx.subtoken_map, log_p.dim() - 1
        grad = torch.zeros(*log_p.shape[:-1], m.num_codes, dtype=log_p.dtype, device=log_p.device)
        grid = code_grid(log_p, m)
        grad_grid = grad.view(grid.shape)
        for j in range(m.ell):
            index = _grid_slice_index(grid, targets, j, lead)
            part = grid.movedim(lead + j, -1).gather(-1, index)  # log p(x) on the slice d_j = v_j
            g = grad_out[..., j].view(*grad_out.shape[:-1], *[1] * (part.dim() - lead))
            share = torch.where(g == 0, torch.zeros_like(part),
                                g * (part - result[..., j].view_as(g)).exp())  # ∂ log P_j / ∂ log p(x)
            grad_grid.movedim(lead + j, -1).scatter_add_(-1, index, share)
        return grad[..., :m.num_classes], None, None


def digit_log_marginals(log_p: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """log p(d_j = v | y_t) for every digit slot j and value v: [B, L, ℓ, b] (each slot's exp sums to 1).
    Positional maps: logsumexp of the code grid over every axis but j; ℓ = 1: log p itself."""
    if not subtoken_map.is_positional:
        return _generic_digit_log_marginals(log_p, subtoken_map)
    if subtoken_map.ell == 1:
        return log_p.unsqueeze(-2)
    grid, ell, lead = code_grid(log_p, subtoken_map), subtoken_map.ell, log_p.dim() - 1
    axes = [lead + j for j in range(ell)]
    return torch.stack([grid.logsumexp([a for a in axes if a != lead + j]) for j in range(ell)], dim=-2)


def digit_marginals(log_p: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """p(d_j = v | y_t) for every digit slot j and value v: [B, L, ℓ, b] (probabilities, each slot sums to 1)."""
    return digit_log_marginals(log_p, subtoken_map).exp()


def _generic_digit_log_marginals(log_p: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """Any map: log Σ_{x : f(x)_j = v} p(x) over the digit table [C, ℓ], as a scatter-logsumexp (shifted by the
    per-(j, v) maximum, so small marginals do not underflow)."""
    table = subtoken_map.digit_table(log_p.device)
    slots = []
    for j in range(subtoken_map.ell):
        index = table[:, j].expand_as(log_p)
        empty = log_p.new_full((*log_p.shape[:-1], subtoken_map.base), NEG_INF)
        top = empty.scatter_reduce(-1, index, log_p, reduce="amax")
        shift = torch.where(torch.isfinite(top), top, torch.zeros_like(top)).detach()
        total = torch.zeros_like(top).scatter_add(-1, index, (log_p - shift.gather(-1, index)).exp())
        has_mass = total > 0  # log 0 = −inf, but through a where: log's gradient 1/0 would make NaN of 0·∞
        slots.append(torch.where(has_mass, torch.where(has_mass, total, 1.0).log() + shift, NEG_INF))
    return torch.stack(slots, dim=-2)
