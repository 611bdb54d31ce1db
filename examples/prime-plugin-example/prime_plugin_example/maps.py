"""A permuted base-b sub-token map (DESIGN §2.1): f(x) = base_b(π(x)), π a fixed seeded permutation of
{0 … C−1}. decode(d) = π⁻¹(Σ_j d_j b^(ℓ−1−j)) for codes < C; codes ≥ C are returned unchanged, so they stay
invalid. The base is the core's smallest b with b^ℓ ≥ C. Option ``seed`` (``model.map_options``) picks π."""

from __future__ import annotations

import torch

from prime_core import BaseBMap, SubTokenMap


class PermutedBaseBMap(SubTokenMap):
    name = "permuted-base-b"

    def __init__(self, num_classes: int, ell: int, seed: int = 0):
        self._inner = BaseBMap(num_classes, ell)
        self.num_classes, self.ell, self.base = self._inner.num_classes, self._inner.ell, self._inner.base
        self.perm = torch.randperm(self.num_classes, generator=torch.Generator().manual_seed(seed))  # π
        self.inverse = torch.empty_like(self.perm)
        self.inverse[self.perm] = torch.arange(self.num_classes)  # π⁻¹

    def encode(self, tokens):
        self.check_tokens(tokens)
        return self._inner.encode(self.perm.to(tokens.device)[tokens.long()])

    def decode(self, digits):
        codes = self._inner.decode(digits)
        valid = codes < self.num_classes
        inverse = self.inverse.to(codes.device)
        return torch.where(valid, inverse[codes.clamp(max=self.num_classes - 1)], codes)
