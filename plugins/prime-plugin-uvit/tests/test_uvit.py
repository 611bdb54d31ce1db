"""U-ViT backbone: shapes for grey/colour images and any ℓ, long skips, the time token, size validation."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from prime_core import BackboneSpec, ConfigError, Config, build_model
from prime_core.runs.config import ModelConfig
from prime_core.diffusion.subtokens import smallest_base
from prime_plugin_uvit import UViT


def make(channels=1, size=(4, 6), ell=2, num_classes=256, out_dim=None, time=False, **opts):
    base = smallest_base(num_classes, ell)
    length = channels * size[0] * size[1]
    spec = BackboneSpec(out_dim=out_dim or num_classes, base=base, ell=ell, length=length, width=8 * ell,
                        num_classes=num_classes, time_conditioned=time)
    opts = {"embed_dim": 16, "depth": 3, "heads": 2, "patch_size": 2, **opts}
    return UViT(spec, channels=channels, image_size=list(size), **opts), spec


@settings(max_examples=12, deadline=None)
@given(channels=st.sampled_from([1, 3]), ell=st.integers(1, 4), gh=st.integers(1, 3), gw=st.integers(1, 3),
       levels=st.sampled_from([4, 16, 256]), time=st.booleans())
def test_shapes_grey_and_colour_any_ell(channels, ell, gh, gw, levels, time):
    net, spec = make(channels, (2 * gh, 2 * gw), ell, levels, time=time)
    y = torch.randint(0, spec.base + 1, (3, spec.length, ell))
    out = net(y, torch.rand(3) if time else None)
    assert out.shape == (3, spec.length, levels)
    assert torch.isfinite(out).all()


def test_patchify_roundtrip_is_channel_major():
    net, spec = make(channels=3, size=(4, 6))
    x = torch.randn(2, spec.length, 5)
    assert torch.equal(net.unpatchify(net.patchify(x), 5), x)
    # token ((c·H)+h)·W + w and its neighbour to the right share a patch
    x = torch.zeros(1, spec.length, 1)
    x[0, 0] = x[0, 1] = 1.0
    patches = net.patchify(x)
    assert patches[0, 0].sum() == 2 and patches[0, 1:].sum() == 0


def test_pixel_output_depends_on_its_own_input_digits():
    torch.manual_seed(0)
    net, spec = make(channels=1, size=(4, 4))
    torch.nn.init.normal_(net.decoder_pred.weight, std=0.1)
    y = torch.full((1, spec.length, 2), spec.base)
    y2 = y.clone()
    y2[0, 5, 0] = 3
    assert not torch.allclose(net(y), net(y2))


def test_long_skips_present_and_used():
    net, _ = make(depth=5)
    assert len(net.in_blocks) == len(net.out_blocks) == 2
    assert all(b.skip is not None for b in net.out_blocks)
    assert net.mid_block.skip is None and all(b.skip is None for b in net.in_blocks)
    y = torch.randint(0, 17, (2, 24, 2))
    torch.nn.init.normal_(net.decoder_pred.weight, std=0.1)
    before = net(y)
    with torch.no_grad():  # cut the skip half of the fusion layers: the output must change
        for b in net.out_blocks:
            b.skip.weight[:, 16:] = 0
    assert not torch.allclose(before, net(y))


def test_time_token_switch():
    plain, _ = make(time=False)
    timed, spec = make(time=True)
    assert plain.time_embed is None and plain.extra_tokens == 0
    assert timed.time_embed is not None and timed.pos_embed.shape[1] == plain.pos_embed.shape[1] + 1
    torch.nn.init.normal_(timed.decoder_pred.weight, std=0.1)
    y = torch.randint(0, spec.base + 1, (2, spec.length, 2))
    assert not torch.allclose(timed(y, torch.tensor([0.1, 0.1])), timed(y, torch.tensor([0.9, 0.9])))
    with pytest.raises(ValueError, match="time-conditioned"):
        timed(y, None)


def test_independent_head_width():
    net, spec = make(ell=2, out_dim=2 * 16)
    assert net(torch.randint(0, 17, (1, spec.length, 2))).shape == (1, spec.length, 32)


@pytest.mark.parametrize("opts, match", [
    ({"image_size": [5, 5]}, "L = channels·H·W"),
    ({"image_size": [4, 6], "patch_size": 4}, "must divide"),
    ({"image_size": [4, 6], "depth": 4}, "odd"),
    ({"image_size": [4, 6], "bogus": 1}, "unknown U-ViT option"),
])
def test_bad_options_one_line(opts, match):
    spec = BackboneSpec(out_dim=16, base=4, ell=2, length=24, width=8, num_classes=16)
    with pytest.raises(ConfigError, match=match) as info:
        UViT(spec, **{"embed_dim": 16, "heads": 2, **opts})
    assert "\n" not in str(info.value)


def test_builds_through_the_registry():
    cfg = Config(model=ModelConfig(num_classes=16, length=64, ell=2, width=16, backbone="uvit-tiny",
                                   backbone_options={"image_size": 8, "patch_size": 2}))
    model = build_model(cfg)
    y = torch.full((2, 64, 2), model.mask_id)
    lp = model.log_probs(y)
    assert lp.shape == (2, 64, 16)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2, 64))
