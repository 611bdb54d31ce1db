"""prime-plugin-images: image data, image sampler controls and Fréchet distances for prime (DESIGN §2.5, §2.8, §4)."""

from .data import Digits, FashionMNIST, ImageDataset, ImageFolder, dequantise, quantise
from .sampler import ImageSampler, TemperatureSchedule, impute_digits

_LAZY = {"classifier_score": "frechet", "frechet_distance": "frechet"}


def __getattr__(name: str):
    """Fréchet distances import torchmetrics (and scipy, ~3 s): loaded when first used, not when `prime` loads
    this plugin for a command that never computes one (issue 21)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["Digits", "FashionMNIST", "ImageDataset", "ImageFolder", "ImageSampler", "TemperatureSchedule",
           "classifier_score", "dequantise", "frechet_distance", "impute_digits", "quantise"]
