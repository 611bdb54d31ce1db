"""Exact likelihoods of tiny block models (DESIGN §2.8), for tests and `prime eval --exact`: each block k is
enumerated over its reveal orders as a plain MDM of length B given the clean prefix x^{<k} (`exact`), and
log p_θ(x) = Σₖ log p_θ(xᵏ | x^{<k}). Internal: import through `prime_core.api`."""

from __future__ import annotations

import torch

from . import exact
from .block import block_log_probs, block_size_of, block_training_log_probs
from .exact import exact_joint_loss, exact_log_likelihood, exact_nelbo, exact_tstep_log_likelihood, exact_tstep_nelbo


class _OneBlock:
    """Block k of a block model seen as a plain time-independent MDM of length B, given the clean prefix of each
    row (the rows of ``tokens`` [n, L], in the order `prime_core.exact` passes them), for the enumerations."""

    time_conditioned = False

    def __init__(self, model, tokens: torch.Tensor, k: int):
        self._model, self.k, self.size = model, k, block_size_of(model)
        self._y0 = model.encode(tokens)
        self.length = self.size
        for name in ("ell", "grouped", "map", "mask_id", "schedule", "num_classes", "base"):
            setattr(self, name, getattr(model, name))

    def _full(self, y: torch.Tensor) -> torch.Tensor:
        if y.shape[0] != self._y0.shape[0]:
            raise ValueError("exact block enumeration needs all rows in one call (at most exact.ROWS)")
        y_t = self._y0.clone()
        y_t[:, self.k * self.size:(self.k + 1) * self.size] = y
        return y_t

    def _at(self, log_p):
        return log_p[:, self.k * self.size:(self.k + 1) * self.size]

    def log_probs(self, y, t=None):
        return self._at(block_log_probs(self._model, self._full(y), self._y0))

    def training_log_probs(self, y, t=None):
        return self._at(block_training_log_probs(self._model, self._full(y), self._y0))


def _per_block(fn, model, tokens: torch.Tensor, *args) -> torch.Tensor:
    """Σₖ fn(block k given its prefix, xᵏ) [n] (float64)."""

    if len(tokens) > exact.ROWS:
        raise ValueError(f"exact block enumeration takes at most {exact.ROWS} rows at a time")
    size = block_size_of(model)
    total = torch.zeros(len(tokens), dtype=torch.float64)
    for k in range(model.length // size):
        total += fn(_OneBlock(model, tokens, k), tokens[:, k * size:(k + 1) * size], *args)
    return total


def exact_block_log_likelihood(model, tokens: torch.Tensor) -> torch.Tensor:
    """log p_θ(x) = Σₖ log p_θ(xᵏ | x^{<k}), each block enumerated over its reveal orders: [n] (float64)."""
    return _per_block(exact_log_likelihood, model, tokens)


def exact_block_nelbo(model, tokens: torch.Tensor) -> torch.Tensor:
    """`block_nelbo`'s expectation in closed form: [n]."""
    return _per_block(exact_nelbo, model, tokens)


def exact_block_tstep_log_likelihood(model, tokens: torch.Tensor, steps: int) -> torch.Tensor:
    """log p_T(x) of the block-by-block T-step sampler: [n]."""
    return _per_block(exact_tstep_log_likelihood, model, tokens, steps)


def exact_block_tstep_nelbo(model, tokens: torch.Tensor, steps: int) -> torch.Tensor:
    """`block_tstep_nelbo`'s expectation in closed form: [n]."""
    return _per_block(exact_tstep_nelbo, model, tokens, steps)


def exact_block_joint_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """`block_joint_loss`'s expectation over t ∈ (0, 1] in closed form: [n]."""
    return _per_block(exact_joint_loss, model, tokens)

