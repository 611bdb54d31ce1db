"""An example prime plugin: a sigmoid noise schedule and a permuted base-b sub-token map."""

from .maps import PermutedBaseBMap
from .schedules import SigmoidSchedule

__all__ = ["PermutedBaseBMap", "SigmoidSchedule"]
