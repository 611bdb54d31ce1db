"""The core's own components (internal): a plugin like any other, registered through the same hooks.

Registers the base-b map, the schedules, the heads and the samplers (implemented in ``diffusion`` and
``sampling``), and holds the components that exist only as built-ins: the MLP backbone (``mlp``), the toy data
sets (``toy``), the bound metrics (``metrics``) and the single-process trainer (``trainer``). Loaded by name by
the default registry (``prime_core.plugin.default``); nothing below this package imports it.
"""

from importlib.resources import files

from ..sampling.confidence import BUILTIN_CONFIDENCE
from ..sampling.first_hitting import BUILTIN_FIRST_HITTING
from ..plugin.hookspecs import hookimpl
from ..diffusion.heads import BUILTIN_HEADS
from ..sampling.remdm import BUILTIN_REMDM
from ..sampling.ancestral import BUILTIN_SAMPLERS
from ..diffusion.schedules import BUILTIN_SCHEDULES
from ..diffusion.subtokens import BaseBMap
from .block_metrics import BLOCK_METRICS
from .metrics import BUILTIN_METRICS
from .mlp import MLPBackbone
from .toy import BUILTIN_DATASETS
from .trainer import BUILTIN_TRAINERS


def _register_all(register, classes):
    for cls in classes:
        register(cls.name, cls)


@hookimpl
def register_maps(register):
    register("base-b", BaseBMap)


@hookimpl
def register_schedules(register):
    _register_all(register, BUILTIN_SCHEDULES)


@hookimpl
def register_backbones(register):
    register("mlp", MLPBackbone)


@hookimpl
def register_heads(register):
    _register_all(register, BUILTIN_HEADS)


@hookimpl
def register_samplers(register):
    _register_all(register, BUILTIN_SAMPLERS + BUILTIN_FIRST_HITTING + BUILTIN_REMDM + BUILTIN_CONFIDENCE)


@hookimpl
def register_datasets(register):
    _register_all(register, BUILTIN_DATASETS)


@hookimpl
def register_trainers(register):
    _register_all(register, BUILTIN_TRAINERS)


@hookimpl
def register_metrics(register):
    _register_all(register, BUILTIN_METRICS + BLOCK_METRICS)


@hookimpl
def register_configs(register):
    register("toy2d", files("prime_core") / "configs" / "toy2d.toml")
