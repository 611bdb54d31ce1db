"""The module named by this distribution's ``prime`` entry point: one @hookimpl per kind it extends.

prime calls each hook once with a ``register(name, class)`` callback (built-ins first, then plugins in discovery
order); a name already taken by another distribution is an error naming both.
"""

from prime_core import hookimpl

from .maps import PermutedBaseBMap
from .schedules import SigmoidSchedule


@hookimpl
def register_schedules(register):
    register("example-sigmoid", SigmoidSchedule)


@hookimpl
def register_maps(register):
    register("permuted-base-b", PermutedBaseBMap)
