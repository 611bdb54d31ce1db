"""Counter-based randomness for the samplers (DESIGN §2.5 item 7): Philox4x32-10 in torch integer ops.

Every uniform a sampler uses is a pure function of a **row key** and a **counter**:
    u = Philox4x32-10(key = (k₀, k₁), counter = (c, i, k, s))
with k₀, k₁ the two 32-bit words of the row key, c the element (e.g. reveal unit j; 0 for a token draw),
i the position (0 … L−1), k the step (or event) index and s the stream (what the uniform is for: `REVEAL`,
`TOKEN`, `REMASK`, `REVEAL_TIME`, `EVENT_TOKEN`, `REVEAL_STEP`; ``GUMBEL`` / ``EVENT_GUMBEL`` are their former names).
One Philox call gives four 32-bit words, so the element counter is c // 4 (float32: one word each) or c // 2 (float64: two words each), and the uniform is (m + ½)·2⁻ⁿ
with m the leading n = 23 (float32) or 52 (float64, 26 bits of each word) bits — exact in its dtype and strictly
inside (0, 1) (one bit short of the mantissa, since the top bin centre of 24 / 53 bits rounds to 1).

A token x̂ ~ softmax(scores) over C classes costs ONE uniform per position (`categorical`: inverse CDF), not
the C uniforms of Gumbel-max, so the keyed draw of a step is O(N) Philox calls for N revealing positions.

Nothing depends on which other rows, positions or steps are drawn, or in which order: a batch equals its members
sampled one by one, chunking, the idle-step cache and the device never change a sample, and an exported graph
(or any other runtime) gets the same numbers from the same function.

Row keys: ``seed`` and row index i give the 64-bit key K = seed·2³² + i, i.e. (k₀, k₁) = (i, seed), so rows of
different seeds never share a key for any i < 2³²; explicit per-row keys are any integers in [0, 2⁶⁴).

The arithmetic is int64 with 32-bit masking; the 32×32 → 64-bit products of Philox are split into 16-bit halves
so nothing overflows a signed int64. It runs identically on CPU and CUDA, and validates against the Random123
known-answer vectors (tests/test_counter_rng.py).
"""

from __future__ import annotations

import functools

import torch

REVEAL, TOKEN, REMASK, REVEAL_TIME, EVENT_TOKEN, REVEAL_STEP = 0, 1, 2, 3, 4, 5  # streams (counter word 3)
GUMBEL, EVENT_GUMBEL = TOKEN, EVENT_TOKEN  # former names (the token draw was Gumbel-max over C uniforms)

_MASK32 = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57  # Philox4x32 round multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85  # Weyl key increments (golden ratio, √3 − 1)
ROUNDS = 10
KEY_LIMIT = 2**64
SEED_LIMIT = 2**32


def _mulhilo(m: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) 32-bit words of the 64-bit product m·x (m, x < 2³²), in int64 without overflow:
    m·x = P_hi·2³² + (P_lo·2¹⁶ + m·x_lo) with P = m·x_hi = P_hi·2¹⁶ + P_lo."""
    p = m * (x >> 16)  # < 2⁴⁸
    s = ((p & 0xFFFF) << 16) + m * (x & 0xFFFF)  # < 2⁴⁹
    return (p >> 16) + (s >> 32), s & _MASK32


def philox4x32_reference(counter: tuple[torch.Tensor, ...], key: tuple[torch.Tensor, torch.Tensor],
                         rounds: int = ROUNDS) -> tuple[torch.Tensor, ...]:
    """Philox4x32-``rounds`` word by word, products split into 16-bit halves (no int64 overflow anywhere): the
    definition `philox4x32` is tested against, and its fallback where int64 products do not wrap."""
    c0, c1, c2, c3 = (torch.as_tensor(c, dtype=torch.long) for c in counter)
    k0, k1 = (torch.as_tensor(k, dtype=torch.long) for k in key)
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


_WRAPS: dict[str, bool] = {}


def _products_wrap(device: torch.device) -> bool:
    """Whether int64 products on ``device`` wrap mod 2⁶⁴ (two's complement), checked once per device type on a
    product ≥ 2⁶³ against Python's exact integers: then m·x (m, x < 2³²) is the full 64-bit product."""
    if device.type not in _WRAPS:
        x = torch.tensor([0xFFFFFFFF, 0xDEADBEEF], dtype=torch.long, device=device)
        p = x * _M0
        got = [(int(h), int(lo)) for h, lo in zip(((p >> 32) & _MASK32).tolist(), (p & _MASK32).tolist())]
        _WRAPS[device.type] = got == [divmod(_M0 * v, 2**32) for v in (0xFFFFFFFF, 0xDEADBEEF)]
    return _WRAPS[device.type]


@functools.lru_cache(maxsize=16)
def _constants(device: torch.device, rounds: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(r·(W₀, W₁) for r < rounds [rounds, 2], (M₀, M₁) [2]) on ``device``, made once: fewer ops per call."""
    weyl = torch.arange(rounds, dtype=torch.long).view(rounds, 1) * torch.tensor([_W0, _W1], dtype=torch.long)
    return weyl.to(device), torch.tensor([_M0, _M1], dtype=torch.long, device=device)


def philox4x32(counter: tuple[torch.Tensor, ...], key: tuple[torch.Tensor, torch.Tensor],
               rounds: int = ROUNDS) -> tuple[torch.Tensor, ...]:
    """Philox4x32-``rounds`` (Salmon et al. 2011, Random123) on broadcastable int64 tensors holding 32-bit words.
    One round: (c₀, c₁, c₂, c₃) → (hi(M₁c₂) ⊕ c₁ ⊕ k₀, lo(M₁c₂), hi(M₀c₀) ⊕ c₃ ⊕ k₁, lo(M₀c₀)), then
    k ← k + (W₀, W₁) mod 2³². Returns the four output words (int64 in [0, 2³²)).

    Fused for small batches, where the cost is the number of tensor ops, not their size: the two products of a
    round are one op on X = (c₀, c₂) stacked, each a single int64 product (it wraps mod 2⁶⁴, so its low and
    high words are exact; checked per device, else `philox4x32_reference`), and the next round's c₁, c₃ are
    this round's lo words, so with Z = (lo(M₀c₀), lo(M₁c₂)):  X ← flip(hi ⊕ Z_prev) ⊕ (k₀, k₁)_r,  Z ← lo —
    7 ops a round instead of ~30, the same words (tests/test_counter_rng.py)."""
    words = [torch.as_tensor(c, dtype=torch.long) for c in counter]
    keys = [torch.as_tensor(k, dtype=torch.long) for k in key]
    words = torch.broadcast_tensors(*words)
    keys = torch.broadcast_tensors(*keys)
    if not _products_wrap(words[0].device):
        return philox4x32_reference(tuple(words), tuple(keys), rounds)
    shape = _broadcast_shape(words[0].shape, keys[0].shape)
    x = torch.stack((words[0], words[2])).expand(2, *shape)  # (c₀, c₂)
    z = torch.stack((words[3], words[1]))  # "lo" of a round −1: flip(z) = (c₁, c₃)
    weyl, m = _constants(x.device, rounds)
    k = torch.stack(keys)  # [2, …]
    # [rounds, 2, …]: (k₀, k₁) + r·(W₀, W₁) mod 2³²
    round_keys = (k + weyl.view(rounds, 2, *([1] * keys[0].dim()))) & _MASK32
    m = m.view(2, *([1] * len(shape)))
    for r in range(rounds):
        p = x * m  # the full 64-bit products M₀c₀, M₁c₂ (mod 2⁶⁴ in int64)
        x = ((p >> 32) & _MASK32 ^ z).flip(0) ^ round_keys[r]
        z = p & _MASK32
    return x[0], z[1], x[1], z[0]


def _broadcast_shape(a: torch.Size, b: torch.Size) -> torch.Size:
    """NumPy broadcasting of two shapes in plain Python: ``torch.broadcast_shapes`` imports sympy and torch's
    symbolic-shape machinery on first use (≈ 0.5 s of a command's start-up, issue 21)."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        raise RuntimeError(f"shapes {list(a)} and {list(b)} cannot be broadcast together")
    return torch.Size(y if x == 1 else x for x, y in zip(a, b))  # a 1 takes the other size (even 0)


def check_seed(seed: int) -> int:
    """A batch seed must be a 32-bit word (it becomes key word k₁)."""
    if not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
    return seed


def row_keys(num_rows: int, seed: int) -> list[int]:
    """The 64-bit row keys K_i = seed·2³² + i of rows i = 0 … n−1 (key words (i, seed))."""
    check_seed(seed)
    if num_rows > SEED_LIMIT:
        raise ValueError(f"at most 2**32 rows per seed, got {num_rows}")
    return [seed * SEED_LIMIT + i for i in range(num_rows)]


def key_words(keys, device=None) -> torch.Tensor:
    """64-bit row keys (a list of ints in [0, 2⁶⁴)) → int64 tensor [n, 2] of key words (K mod 2³², K div 2³²)."""
    keys = [int(k) for k in keys]
    bad = [k for k in keys if not 0 <= k < KEY_LIMIT]
    if bad:
        raise ValueError(f"row seeds (keys) must be integers in [0, 2**64), got {bad[0]}")
    words = [(k & _MASK32, k >> 32) for k in keys]
    return torch.tensor(words, dtype=torch.long, device=device).view(len(keys), 2)


def _to_unit(hi: torch.Tensor, lo: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """(m + ½)·2⁻ⁿ from the leading n = 23 (float32) or 52 (float64: 26 bits of each word) bits: the centres of
    2ⁿ equal bins, every one exact in its dtype and strictly inside (0, 1) (with n = 24 / 53 the top centre
    1 − 2⁻ⁿ⁻¹ would round to 1)."""
    if dtype == torch.float64:
        m = ((hi >> 6) << 26) + (lo >> 6)  # 26 + 26 = 52 bits
        return (m.double() + 0.5) * 2.0**-52
    if dtype == torch.float32:
        return ((hi >> 9).float() + 0.5) * 2.0**-23
    raise ValueError(f"uniforms come in float32 or float64, not {dtype}")


def uniforms(keys: torch.Tensor, step, position: torch.Tensor, size: int, stream: int,
             dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniforms in (0, 1) keyed by (row key, step, position, element c = 0 … size−1, stream): [n, size].

    keys [n, 2] int64 key words, step an int or [n] int64, position [n] int64 (any device; the result is on
    keys' device). Element c of row r is the same number whatever n, the other rows or the order."""
    per = 4 if dtype == torch.float32 else 2
    n_ctr = -(-size // per)
    dev = keys.device
    c0 = torch.arange(n_ctr, device=dev).view(1, n_ctr)
    step = torch.as_tensor(step, dtype=torch.long, device=dev).reshape(-1, 1)
    pos = position.to(dev, torch.long).reshape(-1, 1)
    w = philox4x32((c0, pos, step, torch.full((1, 1), stream, dtype=torch.long, device=dev)),
                   (keys[:, :1], keys[:, 1:]))
    if per == 4:
        u = _to_unit(torch.stack(w, -1), None, dtype)  # [n, n_ctr, 4]
    else:
        u = _to_unit(torch.stack((w[0], w[2]), -1), torch.stack((w[1], w[3]), -1), dtype)  # [n, n_ctr, 2]
    return u.flatten(1)[:, :size]


def gumbel_from_uniform(u: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise G = −log(−log U) (U strictly inside (0, 1), so G is finite)."""
    return -torch.log(-torch.log(u))


def inverse_cdf(scores: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Exact categorical draw x̂ ~ softmax(scores) from one uniform per row, in the dtype of ``scores``.

    scores [N, C] (log-probabilities up to a per-row constant; −inf = probability 0, e.g. outside V(y_t) or cut by
    the nucleus), u [N] in (0, 1). With w_c = exp(scores_c − max scores) (softmax before normalising) and
    F_c = Σ_{c' ≤ c} w_{c'} (cumsum):
        x̂ = min{c : F_c > u·F_{C−1}, w_c > 0},
    i.e. P(x̂ = c) = w_c / F_{C−1} = p_c. A class with p_c = 0 is never returned; where rounding leaves no class
    above u·F_{C−1} (u within an ulp of 1) x̂ is the last class with w_c > 0. Built from ReduceMax / Exp / CumSum /
    comparisons / ReduceMin only, so it traces into an ONNX / TensorRT graph (`export.step`); `categorical` gets
    the same x̂ faster with a binary search."""
    w, cdf, target = _cdf(scores, u)
    classes = torch.arange(scores.shape[-1], device=scores.device)
    positive = w > 0
    first = torch.where((cdf > target) & positive, classes, scores.shape[-1]).amin(-1)
    last = torch.where(positive, classes, -1).amax(-1)
    return torch.minimum(first, last)


def _cdf(scores: torch.Tensor, u: torch.Tensor):
    """(w, F, u·F_{C−1}) of `inverse_cdf`: unnormalised softmax weights, their cumsum and the target [N, 1]."""
    w = torch.exp(scores - scores.amax(-1, keepdim=True))
    cdf = w.cumsum(-1)
    return w, cdf, u.to(cdf.dtype).unsqueeze(-1) * cdf[..., -1:]


def _searched_inverse_cdf(scores: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """`inverse_cdf` by binary search over F (O(log C) per row after the cumsum): the first c with F_c > u·F_{C−1}.
    Where F is flat over a zero-weight class (an exact cumsum) that class is never the first; any row where the
    search lands past the end or on a zero-weight class (u near 1, or a cumsum that is not exact) is redone with
    `inverse_cdf`, so the result is the same x̂."""
    w, cdf, target = _cdf(scores, u)
    x = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    bad = x >= scores.shape[-1]
    bad |= w.gather(-1, x.clamp_max(scores.shape[-1] - 1).unsqueeze(-1)).squeeze(-1) <= 0
    if bool(bad.any()):
        x[bad] = inverse_cdf(scores[bad], u[bad])
    return x


def categorical(scores: torch.Tensor, keys: torch.Tensor, step, positions: torch.Tensor, stream: int = TOKEN,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Keyed token draw x̂ [N] ~ softmax(scores) for N positions: `inverse_cdf` with u = the uniform keyed by
    (row key, step k, position i, element 0, ``stream``).

    scores [N, C]; keys [N, 2] the key words of each position's row; step an int k or [N]; positions [N] the
    positions i. ``dtype`` is the precision of the whole draw (softmax, cumsum, u): float64 keeps the small
    probabilities that float32 truncates (a float32 draw lowers the entropy of the samples — the float32-Gumbel
    issue reported for MDLM / ReMDM); float32 is faster. x̂ of a position is the same whatever the other rows."""
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"the categorical draw runs in float32 or float64, not {dtype}")
    u = uniforms(keys, step, positions, 1, stream, dtype)[:, 0]
    return _searched_inverse_cdf(scores.to(device=keys.device, dtype=dtype), u)
