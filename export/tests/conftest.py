"""Fixtures: small random checkpoints (MLP ℓ = 1 and ℓ = 2, the DiT when installed) and their exported steps.

Exports are the slow part (seconds each on 2 CPU threads), so each graph is exported once per session."""

from __future__ import annotations

import pytest
import torch

from prime_core import Config, ModelConfig, build_model, save_model


def random_model(cfg: Config, seed: int = 0, scale: float = 0.5):
    """Build from ``cfg`` and add noise to every weight, so p_θ is far from uniform (zero-initialised gates of a
    DiT would otherwise hide the backbone)."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def mlp_config(ell: int, **model) -> Config:
    return Config(model=ModelConfig(num_classes=model.pop("num_classes", 27), length=model.pop("length", 3),
                                    ell=ell, width=4 * ell, backbone_options={"hidden": 32, "depth": 1}, **model))


def dit_config(ell: int = 2, time_conditioned: bool = True) -> Config:
    return Config(model=ModelConfig(num_classes=50, length=6, ell=ell, width=32, backbone="dit",
                                    backbone_options={"preset": "tiny"}, time_conditioned=time_conditioned,
                                    schedule="cosine"))


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """factory(name, cfg) → (path, model): a saved random checkpoint."""
    root = tmp_path_factory.mktemp("ckpt")
    cache = {}

    def make(name: str, cfg: Config, seed: int = 0):
        if name not in cache:
            model = random_model(cfg, seed)
            path = str(root / f"{name}.safetensors")
            save_model(path, model, cfg)
            cache[name] = (path, model)
        return cache[name]

    return make


@pytest.fixture(scope="session")
def exported(checkpoint, tmp_path_factory):
    """factory(name, cfg, **export options) → (onnx path, model, metadata), exported once per session."""
    from export.graph import export_step

    root = tmp_path_factory.mktemp("onnx")
    cache = {}

    def make(name: str, cfg: Config, options: dict | None = None, **more):
        options = {**(options or {}), **more}
        if name not in cache:
            _, model = checkpoint(name, cfg)
            path = str(root / f"{name}.onnx")
            meta = export_step(model, cfg, path, **options)
            cache[name] = (path, model, meta)
        return cache[name]

    return make
