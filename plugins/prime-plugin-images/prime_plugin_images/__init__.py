"""prime-plugin-images: image data, image sampler controls and Fréchet distances for prime (DESIGN §2.5, §2.8, §4)."""

from .data import Digits, FashionMNIST, ImageDataset, ImageFolder, dequantise, quantise
from .frechet import classifier_score, frechet_distance
from .sampler import ImageSampler, TemperatureSchedule, impute_digits

__all__ = ["Digits", "FashionMNIST", "ImageDataset", "ImageFolder", "ImageSampler", "TemperatureSchedule",
           "classifier_score", "dequantise", "frechet_distance", "impute_digits", "quantise"]
