"""Sub-token map suite (DESIGN §2.1): f: {0 … C−1} → {0 … b−1}^ℓ is invertible, uses the smallest base,
flags every code that no token maps to, and works on any batch shape."""

from __future__ import annotations

import itertools

import torch
from hypothesis import strategies as st

from .._property import falsify
from ..catalog import check
from ..errors import Failure
from ..strategies import classes_and_ell

MAX_CODES = 4096  # enumerate every digit string only while b^ℓ stays this small


def _build(subject, num_classes: int, ell: int):
    m = subject.build(num_classes, ell)
    if (m.num_classes, m.ell) != (num_classes, ell):
        raise Failure(f"built with (C={num_classes}, ℓ={ell}) but reports C={m.num_classes}, ℓ={m.ell}")
    return m


def _domain(subject, pairs):
    """(C, ℓ) pairs within the map's declared domain (`SubTokenMap.supports`; every pair by default)."""
    return pairs.filter(lambda pair: subject.cls.supports(*pair))


@check("map")
def check_base_is_smallest(subject):
    """b is the smallest base with b^ℓ ≥ C and b^(ℓ−1) < C ≤ b^ℓ; the mask symbol is b (one past the last digit)."""

    def prop(size):
        num_classes, ell = size
        m = _build(subject, num_classes, ell)
        b = m.base
        if b > 2 and (b - 1) ** ell >= num_classes:
            raise Failure(f"base b={b} is not the smallest with b^ℓ ≥ C: ({b - 1})^{ell}={(b - 1) ** ell} ≥ C={num_classes}")
        if not (b >= 2 and b ** (ell - 1) < num_classes <= b**ell):
            raise Failure(f"base b={b} breaks b^(ℓ−1) < C ≤ b^ℓ: {b}^{ell - 1}={b ** (ell - 1)}, "
                          f"C={num_classes}, {b}^{ell}={b ** ell}")
        if m.mask_id != b:
            raise Failure(f"mask id must be b={b}, got {m.mask_id}")

    falsify(prop, _domain(subject, classes_and_ell(max_classes=300, max_ell=5)))


@check("map")
def check_round_trip_all_tokens(subject):
    """decode(encode(x)) = x for every token x < C; digits lie in {0 … b−1}; distinct tokens, distinct digits."""

    def prop(size):
        num_classes, ell = size
        m = _build(subject, num_classes, ell)
        x = torch.arange(num_classes)
        d = m.encode(x)
        if tuple(d.shape) != (num_classes, ell) or d.dtype.is_floating_point:
            raise Failure(f"encode(arange(C)) must be an integer tensor [C, ℓ]=[{num_classes}, {ell}], got "
                          f"{d.dtype} {tuple(d.shape)}")
        if int(d.min()) < 0 or int(d.max()) >= m.base:
            raise Failure(f"digits must lie in [0, b−1]=[0, {m.base - 1}], got [{int(d.min())}, {int(d.max())}]")
        back = m.decode(d)
        bad = (back != x).nonzero()
        if len(bad):
            i = int(bad[0])
            raise Failure(f"decode(encode({i})) = {int(back[i])}, not {i} (digits {d[i].tolist()})")

    falsify(prop, _domain(subject, classes_and_ell(max_classes=300, max_ell=5)))


@check("map")
def check_invalid_codes_flagged(subject):
    """Of the b^ℓ digit strings exactly C decode to valid tokens (a bijection onto {0 … C−1}); every other
    string decodes to a code that `is_valid` flags; tokens outside [0, C) are rejected with ValueError."""

    def prop(size):
        num_classes, ell = size
        m = _build(subject, num_classes, ell)
        if m.base**ell > MAX_CODES:
            return
        strings = torch.tensor(list(itertools.product(range(m.base), repeat=ell)), dtype=torch.long)
        codes = m.decode(strings)
        valid = m.is_valid(codes)
        image = {tuple(r) for r in m.encode(torch.arange(num_classes)).tolist()}
        for s, code, ok in zip(strings.tolist(), codes.tolist(), valid.tolist()):
            if (tuple(s) in image) != bool(ok):
                what = "a token's digits decode to a code flagged invalid" if not ok else \
                    "a digit string no token maps to decodes to a code not flagged invalid"
                raise Failure(f"{what}: digits {s} → code {code}")
        decoded = sorted(codes[valid].tolist())
        if decoded != list(range(num_classes)):
            raise Failure(f"valid digit strings must decode onto {{0 … C−1}} exactly once each, got {decoded[:12]}…")
        for bad in (-1, num_classes):
            try:
                m.encode(torch.tensor([bad]))
            except ValueError:
                continue
            raise Failure(f"encode({bad}) must raise ValueError (tokens lie in [0, {num_classes - 1}])")

    falsify(prop, _domain(subject, classes_and_ell(max_classes=120, max_ell=4)))


@check("map")
def check_batched_shapes(subject):
    """encode maps [...] → [..., ℓ] and decode back for any batch shape, elementwise (batched = one by one)."""

    @st.composite
    def case(draw):
        num_classes, ell = draw(_domain(subject, classes_and_ell(max_classes=100, max_ell=4)))
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
        seed = draw(st.integers(0, 2**16))
        return num_classes, ell, shape, seed

    def prop(example):
        num_classes, ell, shape, seed = example
        m = _build(subject, num_classes, ell)
        x = torch.randint(0, num_classes, shape, generator=torch.Generator().manual_seed(seed))
        d = m.encode(x)
        if tuple(d.shape) != (*shape, ell):
            raise Failure(f"encode of shape {shape} gave {tuple(d.shape)}, expected {(*shape, ell)}")
        one_by_one = torch.stack([m.encode(v.view(1))[0] for v in x.reshape(-1)]) if x.numel() else d.reshape(0, ell)
        if not torch.equal(d.reshape(-1, ell), one_by_one):
            raise Failure("batched encode differs from encoding the tokens one by one")
        back = m.decode(d)
        if tuple(back.shape) != tuple(shape) or not torch.equal(back, x):
            raise Failure(f"decode of digits {tuple(d.shape)} gave shape {tuple(back.shape)} / wrong values")

    falsify(prop, case())
