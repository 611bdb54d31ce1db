"""Entry point (group ``prime``): registers the U-ViT backbone and its size presets."""

from prime_core import hookimpl

from .model import PRESETS, UViT


@hookimpl
def register_backbones(register):
    register("uvit", UViT)
    for name, cls in PRESETS.items():
        register(name, cls)
