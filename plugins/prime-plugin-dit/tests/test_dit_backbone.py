"""DiT backbone: shapes, dtypes, time-conditioning switch, adaLN zero-init, any ℓ, FLOP count; AR exact NLL."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from prime_core import BackboneSpec, Config, ModelConfig, build_model, get_registry
from prime_plugin_dit import DiT, DiTAR, ar_nll
from prime_plugin_dit.model import apply_rotary, rotary_tables


def spec(c=10, ell=2, length=6, width=16, out_dim=None, tc=False):
    from prime_core import smallest_base

    return BackboneSpec(out_dim=out_dim or c, base=smallest_base(c, ell), ell=ell, length=length, width=width,
                        num_classes=c, time_conditioned=tc)


def randomize(module):
    """Break the zero init so outputs depend on every input."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


@settings(max_examples=12, deadline=None)
@given(c=st.integers(2, 300), ell=st.integers(1, 4), length=st.integers(1, 9), batch=st.integers(1, 3))
def test_shapes_any_ell(c, ell, length, batch):
    s = spec(c, ell, length, width=8 * ell)
    net = DiT(s, preset="tiny", heads=2)
    y = torch.randint(0, s.base + 1, (batch, length, ell))  # digits and the mask symbol
    out = net(y)
    assert out.shape == (batch, length, c) and out.dtype == torch.float32


def test_adaln_zero_init_gives_uniform_logits_and_identity_blocks():
    net = DiT(spec(), preset="tiny")
    for block in net.blocks:
        assert torch.count_nonzero(block.adaLN.weight) == 0 and torch.count_nonzero(block.adaLN.bias) == 0
    x = torch.randn(2, 6, 16)
    c = net.condition(None, 2)
    cos, sin = net.rope_cos, net.rope_sin
    assert torch.equal(net.blocks[0](x, c, cos, sin), x)  # gates are 0: the block is the identity
    out = net(torch.randint(0, 5, (2, 6, 2)))
    assert torch.count_nonzero(out) == 0  # zero head: uniform p_θ at step 0


def test_time_conditioning_switch():
    s_tc = spec(tc=True)
    net = randomize(DiT(s_tc, preset="tiny"))
    assert net.time_conditioned
    y = torch.randint(0, 5, (2, 6, 2))
    a, b = net(y, torch.tensor([0.1, 0.1])), net(y, torch.tensor([0.9, 0.9]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="time-conditioned"):
        net(y, None)
    plain = randomize(DiT(spec(tc=False), preset="tiny"))
    assert not plain.time_conditioned and not hasattr(plain, "time_embed")
    assert torch.equal(plain(y, torch.tensor([0.1, 0.1])), plain(y, None))


def test_bidirectional_vs_causal_dependence():
    y = torch.randint(0, 4, (1, 6, 2))
    y2 = y.clone()
    y2[0, 4] = 0 if int(y[0, 4, 0]) else 1  # change token 4
    dit = randomize(DiT(spec(), preset="tiny")).eval()
    assert not torch.allclose(dit(y)[0, 0], dit(y2)[0, 0])  # bidirectional: position 0 sees token 4
    ar = randomize(DiTAR(spec(), preset="tiny")).eval()
    o1, o2 = ar(y), ar(y2)
    assert torch.allclose(o1[0, :5], o2[0, :5])  # positions ≤ 4 see only tokens < their index
    assert not torch.allclose(o1[0, 5], o2[0, 5])


def test_rotary_is_a_rotation_and_relative():
    cos, sin = rotary_tables(5, 8)
    x = torch.randn(1, 1, 5, 8)
    r = apply_rotary(x, cos, sin)
    assert torch.allclose(r.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    q = torch.randn(8).expand(1, 1, 5, 8)
    rq = apply_rotary(q, cos, sin)[0, 0]
    # ⟨R_i q, R_j q⟩ depends only on i − j
    assert torch.allclose(rq[0] @ rq[2], rq[2] @ rq[4], atol=1e-5)


def test_bad_options_are_value_errors():
    with pytest.raises(ValueError, match="divisible by heads"):
        DiT(spec(width=18), preset="tiny", heads=4)
    with pytest.raises(ValueError, match="preset"):
        DiT(spec(), preset="huge")
    with pytest.raises(ValueError, match="time"):
        DiTAR(spec(tc=True))


def test_flops_per_token_counts_matmuls_and_attention():
    s = spec(c=100, length=32, width=64)
    net = DiT(s, preset="small")
    d, depth = 64, 4
    dense = sum(p.numel() for blk in net.blocks for n, p in blk.named_parameters()
                if p.dim() == 2 and not n.startswith("adaLN"))
    expected = 2 * dense + 4 * 32 * d * depth + 2 * d * 100 + 2 * 128 * (6 * d * depth + 2 * d) / 32
    assert math.isclose(net.flops_per_token(), expected, rel_tol=1e-9)
    assert net.flops_per_token() > 2 * dense  # attention is counted, unlike the core's 2·params estimate
    assert net.num_parameters() == sum(p.numel() for p in net.parameters())


def test_registered_presets_build_through_the_registry():
    reg = get_registry()
    for name in ("dit", "dit-tiny", "dit-small", "dit-ar", "dit-ar-tiny"):
        assert name in reg.names("backbone")
    cfg = Config(model=ModelConfig(num_classes=12, length=5, ell=3, width=24, backbone="dit-tiny",
                                   backbone_options={"heads": 2}))
    model = build_model(cfg)
    assert model.backbone.config.depth == 2
    y = model.encode(torch.randint(0, 12, (3, 5)))
    lp = model.log_probs(y)  # fully observed: carry-over puts all mass on the token
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3, 5))


def _ar_model(c=3, length=3, ell=1):
    cfg = Config(model=ModelConfig(num_classes=c, length=length, ell=ell, width=8 * ell, backbone="dit-ar-tiny"))
    model = build_model(cfg)
    randomize(model.backbone)
    return model.eval()


@pytest.mark.parametrize("ell", [1, 2])
def test_ar_exact_nll_is_normalised_over_all_sequences(ell):
    model = _ar_model(c=3, length=3, ell=ell)
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))
    with torch.no_grad():
        total = torch.logsumexp(-ar_nll(model, every), 0)
    assert abs(float(total)) < 1e-5  # Σ_x p_θ(x) = 1 over all C^L sequences


def test_ar_nll_equals_sum_of_next_token_cross_entropy():
    model = _ar_model(c=5, length=4)
    x = torch.randint(0, 5, (6, 4))
    with torch.no_grad():
        logits = model.backbone(model.encode(x))
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), x.reshape(-1), reduction="none")
        assert torch.allclose(ar_nll(model, x), ce.view(6, 4).sum(-1), atol=1e-5)
        metric = get_registry().build("metric", "ar-nll")
        assert metric.is_bound and torch.allclose(metric.per_sequence(model, x), ar_nll(model, x))


def test_ar_sampler_matches_model_and_is_seeded():
    model = _ar_model(c=3, length=3)
    sampler = get_registry().build("sampler", "ar")
    a = sampler.sample(model, 4000, seed=1)
    b = sampler.sample(model, 3, seed=1)
    assert torch.equal(a.tokens[:3], b.tokens) and int(a.nfe[0]) == 3 and int(a.idle_steps.sum()) == 0
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))
    with torch.no_grad():
        p = (-ar_nll(model, every)).exp()
    codes = a.tokens @ torch.tensor([9, 3, 1])
    freq = torch.bincount(codes, minlength=27).double() / len(codes)
    assert float((freq - p.double()).abs().max()) < 0.03


@pytest.mark.parametrize("ell", [1, 2])
def test_kv_cached_decoding_equals_full_causal_pass(ell):
    """DiT.decode position by position (and a 3-position prefill) gives the full causal logits at every i."""
    model = _ar_model(c=5, length=6, ell=ell)
    net = model.backbone
    x = torch.randint(0, 5, (4, 6))
    with torch.no_grad():
        full = net(model.encode(x))  # [B, L, C]; input is shifted right inside
        shifted = net.shift_right(model.encode(x))
        kv = net.new_cache(4)
        steps = [net.decode(shifted[:, i:i + 1], kv) for i in range(6)]
        kv2 = net.new_cache(4)
        chunks = [net.decode(shifted[:, :3], kv2), net.decode(shifted[:, 3:4], kv2), net.decode(shifted[:, 4:], kv2)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    assert torch.allclose(torch.cat(chunks, 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="exceed"):
        net.decode(shifted[:, :1], kv)


def test_kv_cached_sampler_draws_the_uncached_tokens_and_is_batch_invariant():
    model = _ar_model(c=7, length=8, ell=1)
    sampler = get_registry().build("sampler", "ar")
    cached = sampler.sample(model, 6, seed=3, temperature=0.9, top_p=0.95)
    plain = sampler.sample(model, 6, seed=3, temperature=0.9, top_p=0.95, kv_cache=False)
    assert torch.equal(cached.tokens, plain.tokens)
    seeds = [11, 12, 13]
    together = sampler.sample(model, 3, seeds=seeds).tokens
    alone = torch.cat([sampler.sample(model, 1, seeds=[s]).tokens for s in seeds])
    assert torch.equal(together, alone)
    fixed = torch.tensor([-1, 4, -1, -1, 0, -1, -1, -1])
    assert bool((sampler.sample(model, 5, seed=1, fixed_tokens=fixed).tokens[:, [1, 4]] == torch.tensor([4, 0])).all())
