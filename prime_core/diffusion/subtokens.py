"""Sub-token map f (DESIGN §2.1): an invertible base-b encoding of tokens x ∈ {0 … C−1} into ℓ digits.

b is the smallest integer with b^ℓ ≥ C, found with integer arithmetic (a float root such as C ** (1/ℓ)
rounds the wrong way near exact powers). Digit j (0-based, most significant first) is
⌊x / b^(ℓ−1−j)⌋ mod b and x = Σ_j d_j b^(ℓ−1−j). Codes in [C, b^ℓ) are invalid: no data maps there and
no sample may decode there. The sub-token alphabet is {0 … b−1} plus the mask symbol m = b.
"""

from __future__ import annotations

import torch

from ..interfaces import SubTokenMap


def smallest_base(num_classes: int, ell: int) -> int:
    """The smallest integer b ≥ 2 with b**ell ≥ num_classes (pure integer arithmetic)."""
    if num_classes < 2:
        raise ValueError(f"num_classes C must be ≥ 2, got {num_classes}")
    if ell < 1:
        raise ValueError(f"ell (sub-tokens per token) must be ≥ 1, got {ell}")
    lo, hi = 1, 2
    while hi**ell < num_classes:  # exponential search for an upper bracket
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # invariant: lo**ell < C ≤ hi**ell
        mid = (lo + hi) // 2
        if mid**ell >= num_classes:
            hi = mid
        else:
            lo = mid
    return max(hi, 2)


class BaseBMap(SubTokenMap):
    """The paper's base-b map, most significant digit first."""

    name = "base-b"

    def __init__(self, num_classes: int, ell: int):
        self.num_classes = int(num_classes)
        self.ell = int(ell)
        self.base = smallest_base(self.num_classes, self.ell)
        # b^(ℓ−1−j) for j = 0 … ℓ−1, as int64 (b^ℓ ≤ C·2^ℓ stays far below 2^63 for the sizes we allow)
        self._powers = torch.tensor([self.base ** (self.ell - 1 - j) for j in range(self.ell)],
                                    dtype=torch.long)

    @property
    def is_positional(self) -> bool:
        """True unless a subclass changes `encode` or `decode` (then the digit order is its own)."""
        return type(self).encode is BaseBMap.encode and type(self).decode is BaseBMap.decode

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [...] (int) → digits [..., ℓ] in {0 … b−1}."""
        self.check_tokens(tokens)
        powers = self._powers.to(tokens.device)
        return torch.div(tokens.long().unsqueeze(-1), powers, rounding_mode="floor") % self.base

    def decode(self, digits: torch.Tensor) -> torch.Tensor:
        """digits [..., ℓ] → codes [...] = Σ_j d_j b^(ℓ−1−j); codes ≥ C are invalid (see `is_valid`)."""
        self.check_digits(digits)
        return (digits.long() * self._powers.to(digits.device)).sum(-1)
