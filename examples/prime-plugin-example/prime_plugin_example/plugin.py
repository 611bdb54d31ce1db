"""The module named by this distribution's ``prime`` entry point: one @hookimpl per kind it extends.

prime calls each hook once, through pluggy's hook caller, with a ``register`` callback bound to this plugin
(installed plugins are called before the built-ins; ``tryfirst`` / ``trylast`` change that). ``register(cls)``
registers ``cls`` under its ``name`` attribute. A name another distribution already registered is skipped with a
"warning:" line naming both (a built-in always keeps its name); this plugin's other components stay.
"""

from prime_core import hookimpl

from .maps import PermutedBaseBMap
from .schedules import SigmoidSchedule


@hookimpl
def register_schedules(register):
    register(SigmoidSchedule)  # "example-sigmoid"


@hookimpl
def register_maps(register):
    register(PermutedBaseBMap)  # "permuted-base-b"
