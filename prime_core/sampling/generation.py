"""What a generation run returns and the per-block helpers every generator shares (semi-autoregressive windows,
block diffusion): `Generation`, the keyed seed of a row in block k (`block_seed`), and stopping rows at EOS.
Internal: import through `prime_core.api`."""

from __future__ import annotations

import attrs
import numpy as np
import torch


@attrs.define
class Generation:
    tokens: torch.Tensor  # [n, N]
    nfe: torch.Tensor  # [n] backbone evaluations per row, summed over blocks
    idle_steps: torch.Tensor  # [n] idle steps per row, summed over blocks
    steps: int  # T per block
    blocks: int
    forward_calls: int
    stopped_at: list[int | None]  # first free EOS position per row (None: no EOS or no eos_id)
    trajectory: list[torch.Tensor] | None = None  # block 0's trajectory when N ≤ L


def block_seed(row_seed: int, block: int) -> int:
    """The seed of one row in block k: sᵢ itself for k = 0, else a 63-bit hash of (sᵢ, k) (numpy SeedSequence)."""
    if block == 0:
        return int(row_seed)
    state = np.random.SeedSequence([int(row_seed), int(block)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def stop_rows(tokens, fixed, rows, done_to: int, eos_id, stopped) -> None:
    """Rows whose generated part (positions < done_to) holds a free EOS stop there; later positions become EOS."""
    if eos_id is None:
        return
    for i in rows:
        hit = ((tokens[i, :done_to] == eos_id) & (fixed[i, :done_to] < 0)).nonzero()
        if len(hit):
            stopped[i] = int(hit[0])
            tokens[i, stopped[i]:] = eos_id

