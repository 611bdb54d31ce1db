"""Any-length generation (prime_core.sampling.semiar): windows, per-block seeds, batch invariance, EOS stops."""

import pytest
import torch
from hypothesis import given, strategies as st

from prime_core import AncestralSampler, PrimeError
from prime_core.api import block_seed, generate, row_seeds, window_plan


@given(length=st.integers(1, 200), window=st.integers(2, 32), data=st.data())
def test_window_plan_covers_every_position_once(length, window, data):
    stride = data.draw(st.integers(1, window))
    context = data.draw(st.integers(0, window - stride))
    plan = window_plan(length, window, stride, context)
    kept = [p for _, first, count in plan for p in range(first, first + count)]
    assert kept == list(range(length))  # every position kept exactly once, in order
    for start, first, count in plan[1:]:
        assert first - start == context and count <= stride  # the context before the new tokens is fixed
        assert start + window >= first + count  # the kept tokens lie inside the window


def test_window_plan_rejects_bad_stride_and_context():
    with pytest.raises(PrimeError, match="--stride must lie in 1 … L = 8"):
        window_plan(20, 8, stride=9)
    with pytest.raises(PrimeError, match="--context must lie in 0 … L − stride = 4"):
        window_plan(20, 8, stride=4, context=5)


def test_block_seeds_are_deterministic_and_distinct():
    assert block_seed(7, 0) == 7 and block_seed(7, 3) == block_seed(7, 3)
    seeds = {block_seed(s, k) for s in range(50) for k in range(1, 20)}
    assert len(seeds) == 50 * 19 and all(0 <= s < 2**63 for s in seeds)


def test_length_up_to_L_is_plain_sampling(tiny_model):
    model = tiny_model(num_classes=7, length=6, ell=2)
    sampler, seeds = AncestralSampler(), row_seeds(3, 5)
    plain = sampler.sample(model, 3, steps=5, seed=5)
    g = generate(model, sampler, 6, seeds=seeds, steps=5)
    assert torch.equal(g.tokens, plain.tokens) and torch.equal(g.nfe, plain.nfe) and g.blocks == 1
    short = generate(model, sampler, 4, seeds=seeds, steps=5)
    assert torch.equal(short.tokens, plain.tokens[:, :4])


def test_long_generation_is_batch_invariant_and_keeps_constraints(tiny_model):
    model = tiny_model(num_classes=7, length=6, ell=2)
    sampler, seeds = AncestralSampler(), row_seeds(3, 1)
    fixed = torch.full((3, 20), -1)
    fixed[:, 0] = 4
    fixed[1, 13] = 2  # a constraint in a later block
    g = generate(model, sampler, 20, seeds=seeds, fixed=fixed, stride=2, context=3, steps=4)
    assert g.tokens.shape == (3, 20) and g.blocks == 1 + 7 and bool((g.tokens < 7).all())
    assert bool((g.tokens[:, 0] == 4).all()) and int(g.tokens[1, 13]) == 2
    for i in range(3):  # each row alone gives the same tokens and costs
        alone = generate(model, sampler, 20, seeds=[seeds[i]], fixed=fixed[i:i + 1], stride=2, context=3, steps=4)
        assert torch.equal(alone.tokens[0], g.tokens[i]) and int(alone.nfe[0]) == int(g.nfe[i])
    assert int(g.nfe.max()) <= g.blocks * 4 and int(g.nfe.min()) >= g.blocks  # summed over blocks
    assert torch.equal((g.idle_steps + g.nfe), torch.full((3,), g.blocks * 4))  # cache on: each step idle or not


def test_each_block_is_conditioned_on_its_context(tiny_model):
    """Block k is the sampler's draw with the previous context tokens as fixed_tokens and its block seed."""
    model = tiny_model(num_classes=7, length=6, ell=2)
    sampler = AncestralSampler()
    g = generate(model, sampler, 9, seeds=[11], stride=3, steps=4)
    cond = torch.full((1, 6), -1)
    cond[0, :3] = g.tokens[0, 3:6]
    again = sampler.sample(model, 1, steps=4, seeds=[block_seed(11, 1)], fixed_tokens=cond)
    assert torch.equal(again.tokens[0, 3:], g.tokens[0, 6:9])


def test_rows_stop_at_the_first_generated_eos(tiny_model):
    model = tiny_model(num_classes=3, length=4, ell=1)
    sampler, seeds = AncestralSampler(), row_seeds(8, 0)
    free = generate(model, sampler, 16, seeds=seeds, stride=2, steps=3)
    g = generate(model, sampler, 16, seeds=seeds, stride=2, steps=3, eos_id=2)
    assert any(s is not None for s in g.stopped_at)
    for i, stop in enumerate(g.stopped_at):
        if stop is None:
            assert torch.equal(g.tokens[i], free.tokens[i]) and not bool((g.tokens[i] == 2).any())
            continue
        assert torch.equal(g.tokens[i, :stop], free.tokens[i, :stop]) and int(free.tokens[i, stop]) == 2
        assert bool((g.tokens[i, stop:] == 2).all()) and int(g.nfe[i]) <= int(free.nfe[i])
    fixed = torch.full((8, 16), -1)
    fixed[:, 0] = 2  # an EOS the user fixed is not a stop
    assert all(s is None or s > 0 for s in generate(model, sampler, 16, seeds=seeds, fixed=fixed, stride=2,
                                                     steps=3, eos_id=2).stopped_at)
