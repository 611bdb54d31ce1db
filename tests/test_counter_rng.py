"""DESIGN §2.5 item 7: Philox4x32-10 keyed uniforms (prime_core.sampling.counter_rng)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from prime_core.sampling.counter_rng import (GUMBEL, REVEAL, SEED_LIMIT, key_words, philox4x32, row_keys, uniforms)

# Random123 kat_vectors, philox4x32 with 10 rounds: (counter, key) → output
KATS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KATS)
def test_philox_known_answers(counter, key, expected):
    out = philox4x32(tuple(torch.tensor(c) for c in counter), tuple(torch.tensor(k) for k in key))
    assert tuple(int(w) for w in out) == expected


def test_philox_is_elementwise_over_broadcast_tensors():
    counters = [torch.tensor([KATS[0][0][i], KATS[2][0][i]]) for i in range(4)]
    keys = [torch.tensor([KATS[0][1][i], KATS[2][1][i]]) for i in range(2)]
    out = torch.stack(philox4x32(tuple(counters), tuple(keys)), -1)
    assert out.tolist() == [list(KATS[0][2]), list(KATS[2][2])]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniforms_strictly_inside_unit_interval_and_uniform(dtype):
    keys = key_words(row_keys(64, 7))
    u = uniforms(keys, 3, torch.arange(64), 1000, GUMBEL, dtype)
    assert u.dtype == dtype and u.shape == (64, 1000)
    assert bool((u > 0).all() & (u < 1).all())
    assert float(u.double().mean()) == pytest.approx(0.5, abs=0.005)  # 64 000 draws: σ ≈ 0.0011
    hist = torch.histc(u.double(), bins=10, min=0.0, max=1.0)
    assert float(((hist - 6400) ** 2 / 6400).sum()) < 33.7  # χ²(9) beyond 33.7 with probability 1e-4
    # extremes of the word map stay inside (0, 1)
    from prime_core.sampling.counter_rng import _to_unit

    ends = _to_unit(torch.tensor([0, 2**32 - 1]), torch.tensor([0, 2**32 - 1]), dtype)
    assert bool((ends > 0).all() & (ends < 1).all())


def test_an_element_does_not_depend_on_the_rest_of_the_call():
    keys = key_words([5, 2**64 - 1, 12345678901234])
    full = uniforms(keys, torch.tensor([4, 4, 9]), torch.tensor([0, 3, 1]), 11, REVEAL, torch.float64)
    alone = uniforms(keys[1:2], 4, torch.tensor([3]), 5, REVEAL, torch.float64)
    assert torch.equal(full[1, :5], alone[0])
    other_stream = uniforms(keys[1:2], 4, torch.tensor([3]), 5, GUMBEL, torch.float64)
    assert not torch.equal(other_stream, alone)


@given(s1=st.integers(0, SEED_LIMIT - 1), s2=st.integers(0, SEED_LIMIT - 1), i=st.integers(0, 2**32 - 1),
       j=st.integers(0, 2**32 - 1))
def test_row_keys_of_different_seeds_never_collide(s1, s2, i, j):
    """K = seed·2³² + i: two rows share a key only if they have the same seed and the same index."""
    k1, k2 = s1 * 2**32 + i, s2 * 2**32 + j
    words = key_words([k1, k2])
    assert (words[0].tolist() == words[1].tolist()) == (s1 == s2 and i == j)
    assert words[0].tolist() == [i, s1]


def test_row_keys_match_their_words_and_refuse_bad_seeds():
    assert row_keys(3, 2) == [2 * 2**32, 2 * 2**32 + 1, 2 * 2**32 + 2]
    assert len(set(row_keys(2**12, 0)) | set(row_keys(2**12, 1))) == 2**13
    with pytest.raises(ValueError, match="seed must be an integer in"):
        row_keys(2, 2**32)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*64\)"):
        key_words([-1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_numbers():
    keys = key_words(row_keys(8, 3))
    for dtype in (torch.float32, torch.float64):
        cpu = uniforms(keys, 2, torch.arange(8), 77, GUMBEL, dtype)
        gpu = uniforms(keys.cuda(), 2, torch.arange(8).cuda(), 77, GUMBEL, dtype)
        assert torch.equal(cpu, gpu.cpu())


# ------------------------------------------------------------------------------------- issue 21: the fused Philox
@pytest.mark.parametrize("shapes", [[(1,)] * 6, [(5, 1), (1, 3), (5, 3), (1, 1), (5, 1), (1, 3)],
                                    [(64, 7)] * 4 + [(64, 1)] * 2, [(2, 3, 4)] * 6])
def test_fused_philox_equals_the_word_by_word_definition(shapes):
    """Same four words as `philox4x32_reference` (the former implementation) for any broadcast shapes, including
    the largest words (products ≥ 2⁶³, where the fused int64 product wraps)."""
    from prime_core.sampling.counter_rng import philox4x32_reference

    g = torch.Generator().manual_seed(len(shapes[0]))
    words = [torch.randint(0, 2**32, s, generator=g) for s in shapes]
    words[0].view(-1)[0] = 0xFFFFFFFF
    out, ref = philox4x32(tuple(words[:4]), tuple(words[4:])), philox4x32_reference(tuple(words[:4]),
                                                                                     tuple(words[4:]))
    assert all(torch.equal(a, b) for a, b in zip(out, ref))


def test_fused_philox_falls_back_where_int64_products_do_not_wrap(monkeypatch):
    """A device whose int64 products do not wrap runs the word-by-word definition: still the known answers."""
    import prime_core.sampling.counter_rng as rng

    monkeypatch.setitem(rng._WRAPS, "cpu", False)
    for counter, key, expected in KATS:
        out = philox4x32(tuple(torch.tensor(c) for c in counter), tuple(torch.tensor(k) for k in key))
        assert tuple(int(w) for w in out) == expected


def test_products_wrap_on_this_cpu():
    """The fused path is the one that runs here (else the speed-up of issue 21 would silently not apply)."""
    from prime_core.sampling.counter_rng import _products_wrap

    assert _products_wrap(torch.device("cpu"))
