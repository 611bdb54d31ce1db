"""Entry point (group ``prime``, name ``dit``): registers the DiT backbones, their named presets, the causal
AR baseline, its exact-NLL metric and its left-to-right sampler, and the released networks (``dit-official``,
``ar-official``) that ``prime import`` (commands.py) loads official checkpoints into."""

from __future__ import annotations

from prime_core import hookimpl

from .ar import ARNLLMetric, ARSampler, DiTAR
from .model import DiT, PRESETS
from .official import OfficialAR, OfficialDiT


def _with_preset(cls, preset: str):
    """A subclass of ``cls`` whose default preset is ``preset`` (registered as e.g. ``dit-small``)."""

    def __init__(self, spec, **options):
        cls.__init__(self, spec, preset=options.pop("preset", preset), **options)

    return type(f"{cls.__name__}_{preset}", (cls,), {"__init__": __init__, "__doc__": f"{cls.__name__}, preset {preset!r}."})


@hookimpl
def register_backbones(register):
    register("dit", DiT)
    register("dit-ar", DiTAR)
    register("dit-official", OfficialDiT)  # the released MDLM / MDM-Prime networks (prime import)
    register("ar-official", OfficialAR)
    for preset in PRESETS:
        register(f"dit-{preset}", _with_preset(DiT, preset))
        register(f"dit-ar-{preset}", _with_preset(DiTAR, preset))


@hookimpl
def register_metrics(register):
    register("ar-nll", ARNLLMetric)


@hookimpl
def register_samplers(register):
    register("ar", ARSampler)
