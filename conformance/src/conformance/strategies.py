"""Hypothesis strategies for the diffusion problem's sizes, times and masks (DESIGN §2), for plugin authors too.

Symbols: C classes, ℓ sub-tokens per token, b = the smallest base with b^ℓ ≥ C, L tokens per sequence,
α_t the schedule, ε the training-time floor. Every strategy shrinks toward the smallest problem.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

__all__ = ["classes_and_ell", "enumerable_problems", "masks", "noisy_states", "time_pairs", "times",
           "token_batches"]


@st.composite
def classes_and_ell(draw, max_classes: int = 64, max_ell: int = 4):
    """(C, ℓ) for which some base b has b^(ℓ−1) < C ≤ b^ℓ (every one of the ℓ digits is needed), C ≤ max_classes.
    Drawn as ℓ, then b, then C in (b^(ℓ−1), b^ℓ]; shrinks toward C = 2, ℓ = 1."""
    ell = draw(st.integers(1, max_ell))
    while ell > 1 and 2 ** (ell - 1) + 1 > max_classes:
        ell -= 1
    top_base = 2
    while (top_base + 1) ** (ell - 1) < max_classes and top_base < max_classes:
        top_base += 1
    base = draw(st.integers(2, top_base))
    low, high = max(2, base ** (ell - 1) + 1), min(base**ell, max_classes)
    num_classes = draw(st.integers(low, max(low, high)))
    return num_classes, ell


@st.composite
def enumerable_problems(draw, max_units: int = 6, max_classes: int = 9):
    """(C, ℓ, L) small enough to enumerate every sequence and every reveal order (N = L·ℓ ≤ max_units)."""
    num_classes, ell = draw(classes_and_ell(max_classes=max_classes, max_ell=min(3, max_units)))
    length = draw(st.integers(1, max(1, max_units // ell)))
    return num_classes, ell, length


def times(eps: float = 1e-3, high: float = 1.0) -> st.SearchStrategy[float]:
    """t ∈ [ε, 1] (training times are clipped to this range)."""
    return st.floats(eps, high, allow_nan=False, allow_infinity=False)


@st.composite
def time_pairs(draw, min_gap: float = 1e-4):
    """(t₁, t₂) with 0 ≤ t₁ < t₂ ≤ 1 and t₂ − t₁ ≥ min_gap."""
    # Slack of one extra min_gap keeps t₂ − t₁ ≥ min_gap after float rounding near t = 1.
    t1 = draw(st.floats(0.0, 1.0 - 2.0 * min_gap, allow_nan=False))
    u = draw(st.floats(0.0, 1.0, allow_nan=False))
    t2 = min(1.0, t1 + 1.5 * min_gap + u * (1.0 - 2.0 * min_gap - t1))
    return t1, t2


def masks(length: int, ell: int, *, grouped: bool = False) -> st.SearchStrategy[torch.Tensor]:
    """bool [L, ℓ], True = masked; with grouped noise a token's ℓ digits share one draw."""
    units = length if grouped else length * ell
    flat = st.lists(st.booleans(), min_size=units, max_size=units)

    def to_tensor(bits):
        m = torch.tensor(bits, dtype=torch.bool)
        return m.view(length, 1).expand(length, ell).clone() if grouped else m.view(length, ell)

    return flat.map(to_tensor)


def token_batches(num_classes: int, shape: tuple[int, ...]) -> st.SearchStrategy[torch.Tensor]:
    """LongTensor of ``shape`` with values in {0 … C−1} (shrinks toward token 0)."""
    n = 1
    for s in shape:
        n *= s
    return st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n).map(
        lambda v: torch.tensor(v, dtype=torch.long).view(shape))


@st.composite
def noisy_states(draw, subtoken_map, length: int, batch: int = 1, grouped: bool = False):
    """(x₀ [B, L], y_t [B, L, ℓ]): real tokens and a partially masked state reachable from them (mask id b)."""
    x0 = draw(token_batches(subtoken_map.num_classes, (batch, length)))
    m = torch.stack([draw(masks(length, subtoken_map.ell, grouped=grouped)) for _ in range(batch)])
    y0 = subtoken_map.encode(x0)
    return x0, y0.masked_fill(m, subtoken_map.mask_id)
