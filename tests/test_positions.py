"""Backbone ``positions``: PrimeModel.log_probs_at asks the backbone for the logits at some positions only, and
falls back to slicing the full output for backbones written without the argument."""

import torch

from prime_core import Backbone
from prime_test_models import make_model


class Legacy(Backbone):
    """A backbone from before ``positions``: forward(y, t) only."""

    def __init__(self, inner):
        super().__init__(inner.spec)
        self.inner = inner
        self.time_conditioned = inner.time_conditioned

    def forward(self, y, t=None):
        return self.inner(y, t)


def _state(model, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y0 = model.map.encode(torch.randint(0, model.num_classes, (batch, model.length), generator=g))
    y = y0.masked_fill(torch.rand(y0.shape, generator=g) < 0.5, model.mask_id)
    where = torch.rand(batch, model.length, generator=g) < 0.5
    return y, where


def test_log_probs_at_equals_full_log_probs_there(tiny_model):
    model = tiny_model(num_classes=10, length=3, ell=2)
    y, where = _state(model)
    calls = []
    model.backbone.register_forward_hook(lambda mod, args, kwargs, out: calls.append(kwargs), with_kwargs=True)
    with torch.no_grad():
        full = model.log_probs(y)
        at_mask = model.log_probs_at(y, where)
        flat = torch.tensor([11, 0, 4])
        at_flat = model.log_probs_at(y, flat)
    assert model.backbone.accepts_positions()
    assert calls[1]["positions"] is where and calls[2]["positions"] is flat  # the backbone was asked, not sliced
    assert at_mask.shape == (int(where.sum()), 10) and torch.allclose(at_mask, full[where], atol=1e-5)
    assert torch.allclose(at_flat, full.flatten(0, 1)[flat], atol=1e-5)


def test_backbone_without_positions_is_sliced(tiny_model):
    model = tiny_model(num_classes=10, length=3, ell=2)
    y, where = _state(model, seed=1)
    with torch.no_grad():
        want = model.log_probs(y)[where]
        model.backbone = Legacy(model.backbone)
        assert not Legacy.accepts_positions()
        got = model.log_probs_at(y, where)
        assert torch.allclose(got, want, atol=1e-5)
        assert torch.allclose(model(y, None, positions=where), model(y)[where])
