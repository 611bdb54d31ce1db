"""Parameterizations (DESIGN §2.3) and marginals of a joint distribution over tokens.

V(y_tⁱ) = {x < C : f(x)_j = y_t^{i,j} for every observed digit j}. Every head's `log_probs` is a distribution
over V, so samples never contain invalid codes and never change observed digits; the heads differ in how the
backbone's logits E are turned into it and in what the paper's joint loss sees during training.
"""

from __future__ import annotations

import torch

from .interfaces import Parameterization, SubTokenMap

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


def restrict(scores: torch.Tensor, y_t: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """log softmax of `scores` over V(y_t) (−inf elsewhere)."""
    scores = scores.float().masked_fill(~consistent(y_t, subtoken_map), NEG_INF)
    return torch.log_softmax(scores, dim=-1)


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
        """Σ_j log p_j(f(x)_j) for every token x: [B, L, C]."""
        lp = self.digit_log_probs(logits, subtoken_map)
        table = subtoken_map.digit_table(logits.device)  # [C, ℓ]
        return sum(lp[..., j, :][..., table[:, j]] for j in range(subtoken_map.ell))

    def log_probs(self, logits, y_t, subtoken_map):
        return restrict(self.token_scores(logits, subtoken_map), y_t, subtoken_map)


BUILTIN_HEADS = [CarryOverHead, JointHead, IndependentHead]


# ------------------------------------------------------------------------------------------------ marginals
def subset_log_marginal(log_p: torch.Tensor, targets: torch.Tensor, subset: torch.Tensor,
                        subtoken_map: SubTokenMap) -> torch.Tensor:
    """log p(d_S = v_S | y_t) = log Σ_{x : f(x)_j = v_j ∀ j ∈ S} p(x | y_t).

    log_p [B, L, C]; targets v [B, L, ℓ] (digit values); subset S [B, L, ℓ] bool. Returns [B, L]
    (0 where S is empty). With S = one digit this is the digit marginal; with S = all digits, log p(x).
    """
    table = subtoken_map.digit_table(log_p.device)
    keep = torch.ones_like(log_p, dtype=torch.bool)
    for j in range(subtoken_map.ell):
        keep &= ~subset[..., j:j + 1] | (table[:, j] == targets[..., j:j + 1])
    return torch.logsumexp(log_p.masked_fill(~keep, NEG_INF), dim=-1)


def digit_marginals(log_p: torch.Tensor, subtoken_map: SubTokenMap) -> torch.Tensor:
    """p(d_j = v | y_t) for every digit slot j and value v: [B, L, ℓ, b] (probabilities, each slot sums to 1)."""
    table = subtoken_map.digit_table(log_p.device)
    p = log_p.exp()
    out = p.new_zeros(*p.shape[:-1], subtoken_map.ell, subtoken_map.base)
    for j in range(subtoken_map.ell):
        out[..., j, :].index_add_(-1, table[:, j], p)
    return out
