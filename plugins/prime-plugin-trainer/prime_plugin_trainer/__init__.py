"""prime-plugin-trainer: the "torch" trainer (DESIGN §3's GPU trainer), single process or under torchrun.

Public names: `TorchTrainer`, `TrainerOptions` (validated ``train.options``), `EMA`.
"""

from .ema import EMA
from .options import TrainerOptions
from .trainer import TorchTrainer

__all__ = ["EMA", "TorchTrainer", "TrainerOptions"]
