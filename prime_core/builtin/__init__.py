"""The core's own components, registered through the same hooks any plugin uses."""

from importlib.resources import files

from ..confidence_sampler import BUILTIN_CONFIDENCE
from ..first_hitting import BUILTIN_FIRST_HITTING
from ..hookspecs import hookimpl
from ..heads import BUILTIN_HEADS
from ..remdm import BUILTIN_REMDM
from ..sampler import BUILTIN_SAMPLERS
from ..schedules import BUILTIN_SCHEDULES
from ..subtokens import BaseBMap
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
