import pytest
import torch

from prime_core import Config, build_model
from prime_core.runs.config import ModelConfig


@pytest.fixture
def tiny_image_model():
    """An untrained U-ViT model on 4×4 grey images, C = 16 levels, ℓ = 2 (b = 4)."""
    def make(ell=2, levels=16, size=4, channels=1, backbone="uvit-tiny"):
        torch.manual_seed(0)
        cfg = Config(model=ModelConfig(num_classes=levels, length=channels * size * size, ell=ell, width=8 * ell,
                                       backbone=backbone,
                                       backbone_options={"image_size": size, "channels": channels,
                                                         "patch_size": 2, "embed_dim": 16, "heads": 2}))
        model = build_model(cfg).eval()
        torch.nn.init.normal_(model.backbone.decoder_pred.weight, std=0.5)  # non-uniform predictions
        return model
    return make
