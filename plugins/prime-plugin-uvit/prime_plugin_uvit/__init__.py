"""prime-plugin-uvit: the U-ViT backbone (Bao et al., 2023) for pixel-level MDM-Prime."""

from .model import UViT, UViTConfig

__all__ = ["UViT", "UViTConfig"]
