"""One optimizer step's data and noise, drawn for the whole global batch and then split.

Step n of a run with seed s uses rows `batch_indices(n, B, N, s)` of the training split (the core's per-epoch
permutations) and, for every row i, a time t_i and a mask drawn from q(y_t | y_0) by a generator seeded with
(s, n). Both are functions of (s, n) only and are drawn for all B rows before splitting, so a row's loss is the
same however the batch is split into processes × micro-batches (the split changes only float summation
order), and ``--resume`` replays exactly the steps a killed run would have taken.
"""

from __future__ import annotations

import attrs
import torch

from prime_core.api import PrimeError, batch_indices, sample_mask


@attrs.frozen
class StepBatch:
    tokens: torch.Tensor  # [B, L] token ids x_0
    t: torch.Tensor  # [B] training times in [ε, 1]
    masked: torch.Tensor  # [B, L, ℓ] True where the sub-token is masked in y_t

    def rows(self, sl: slice) -> "StepBatch":
        return StepBatch(self.tokens[sl], self.t[sl], self.masked[sl])

    def to(self, device) -> "StepBatch":
        return StepBatch(self.tokens.to(device), self.t.to(device), self.masked.to(device))


def noise_seed(seed: int, step: int) -> int:
    """The seed of step n's noise generator (the same rule as the core's simple trainer)."""
    return seed * 1_000_003 + step


def draw_step(train: torch.Tensor, step: int, batch_size: int, seed: int, model, eps: float) -> StepBatch:
    """Rows, times t ~ stratified U[ε, 1] over the B rows, and masks (keep probability α_t per unit)."""
    tokens = train[batch_indices(step, batch_size, len(train), seed)]
    g = torch.Generator().manual_seed(noise_seed(seed, step))
    t = model.schedule.sample_times(batch_size, eps=eps, generator=g)
    ell = model.ell
    masked = sample_mask((batch_size, tokens.shape[1], ell), model.schedule.alpha(t), grouped=model.grouped,
                         generator=g)
    return StepBatch(tokens, t, masked)


def micro_slices(batch_size: int, world_size: int, grad_accum: int, rank: int) -> list[slice]:
    """Rows of this rank's micro-batches: the global batch is cut into world_size × grad_accum equal parts,
    part k = rank · grad_accum + a going to micro-batch a of ``rank``."""
    parts = world_size * grad_accum
    if batch_size % parts:
        raise PrimeError(f"train.batch_size={batch_size} must be divisible by processes × train.options.grad_accum "
                         f"= {world_size} × {grad_accum} = {parts}")
    m = batch_size // parts
    return [slice((rank * grad_accum + a) * m, (rank * grad_accum + a + 1) * m) for a in range(grad_accum)]
