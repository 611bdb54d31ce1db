"""prime-core: partial-masking discrete diffusion (MDM-Prime).

Public API; internals live in their own modules. See DESIGN §2 for the math each module implements.
"""

from .__about__ import __version__
from .build import build_dataset, build_model, load_model, save_model
from .checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from .config import Config, DataConfig, EvalConfig, ModelConfig, SampleConfig, TrainConfig, load_config
from .encoder import SubTokenEncoder
from .errors import CheckpointError, ConfigError, PrimeError, RegistryError
from .hookspecs import hookimpl
from .idle import expected_idle_steps, idle_report, simulate_idle_steps
from .interfaces import (Backbone, BackboneSpec, Dataset, Exporter, Metric, MetricResult, NoiseSchedule,
                         Parameterization, Sampler, SubTokenMap, Tokenizer, Trainer)
from .model import PrimeModel
from .registry import Registry, get_registry, new_registry
from .sampler import AncestralSampler, SampleResult
from .subtokens import BaseBMap, smallest_base

__all__ = [
    "__version__",
    "AncestralSampler", "Backbone", "BackboneSpec", "BaseBMap", "Checkpoint", "CheckpointError", "Config",
    "ConfigError", "DataConfig", "Dataset", "EvalConfig", "Exporter", "Metric", "MetricResult", "ModelConfig",
    "NoiseSchedule", "Parameterization", "PrimeError", "PrimeModel", "Registry", "RegistryError", "SampleConfig",
    "SampleResult", "Sampler", "SubTokenEncoder", "SubTokenMap", "Tokenizer", "TrainConfig", "Trainer",
    "build_dataset", "build_model", "expected_idle_steps", "get_registry", "hookimpl", "idle_report",
    "load_config", "load_model", "new_registry", "read_checkpoint", "save_checkpoint", "save_model",
    "simulate_idle_steps", "smallest_base",
]
