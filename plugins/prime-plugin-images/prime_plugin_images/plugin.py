"""Entry point (group ``prime``): image data sets and the image sampler."""

from prime_core import hookimpl

from .data import BUILTIN_IMAGE_DATASETS
from .density import ImageDensity2D
from .sampler import BUILTIN_IMAGE_SAMPLERS


@hookimpl
def register_datasets(register):
    for cls in [*BUILTIN_IMAGE_DATASETS, ImageDensity2D]:
        register(cls.name, cls)


@hookimpl
def register_samplers(register):
    for cls in BUILTIN_IMAGE_SAMPLERS:
        register(cls.name, cls)
