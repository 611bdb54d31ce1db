"""Entry point (group ``prime``, name ``dit``): registers the DiT backbones, their named presets, the causal
AR baseline, its exact-NLL metric and its left-to-right sampler, and the released networks (``dit-official``,
``ar-official``) that ``prime import`` (commands.py) loads official checkpoints into."""

from __future__ import annotations

from prime_core import hookimpl

from .ar import ARNLLMetric, ARSampler, DiTAR
from .model import DiT, PRESETS
from .official import OfficialAR, OfficialDiT


@hookimpl
def register_backbones(register):
    register("dit", DiT)
    register("dit-ar", DiTAR)
    register("dit-official", OfficialDiT)  # the released MDLM / MDM-Prime networks (prime import)
    register("ar-official", OfficialAR)
    for preset in PRESETS:
        register(f"dit-{preset}", DiT, preset=preset)  # a preset is default options, not a subclass
        register(f"dit-ar-{preset}", DiTAR, preset=preset)


@hookimpl
def register_metrics(register):
    register("ar-nll", ARNLLMetric)


@hookimpl
def register_samplers(register):
    register("ar", ARSampler)
