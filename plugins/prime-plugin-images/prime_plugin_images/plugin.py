"""Entry point (group ``prime``): image data sets and the image sampler."""

from importlib.resources import files

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


@hookimpl
def register_configs(register):
    """The example configs shipped in this package (prime config list)."""
    register("images-digits", files(__package__) / "configs" / "images-digits.toml")
    register("images-fmnist", files(__package__) / "configs" / "images-fmnist.toml")
    register("toy-study", files(__package__) / "configs" / "toy-study.toml")
