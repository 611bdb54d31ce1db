"""Entry point (group ``prime``): registers the "torch" trainer through the core's hook."""

from prime_core import hookimpl

from .trainer import TorchTrainer


@hookimpl
def register_trainers(register):
    register(TorchTrainer.name, TorchTrainer)
