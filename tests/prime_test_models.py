"""Tiny random models for the core tests (a module with a unique name, importable from any test file)."""

import torch

from prime_core import Config, ModelConfig, build_model


def make_model(registry, *, num_classes=5, length=2, ell=2, head="carry-over", noise="independent",
               schedule="cosine", time_conditioned=False, seed=0, scale=1.0, width=None, hidden=32):
    """A tiny MLP model with random (large) weights, so its p_θ is far from uniform."""
    width = width or 4 * ell
    cfg = Config(model=ModelConfig(num_classes=num_classes, length=length, ell=ell, width=width, head=head,
                                   noise=noise, schedule=schedule, time_conditioned=time_conditioned,
                                   backbone_options={"hidden": hidden, "depth": 1}))
    torch.manual_seed(seed)
    model = build_model(cfg, registry)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, scale)
    return model.eval()
