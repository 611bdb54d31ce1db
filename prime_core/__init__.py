"""prime-core: partial-masking discrete diffusion (MDM-Prime).

Public API; internals live in their own modules. See DESIGN §2 for the math each module implements.

Names are imported on first use (PEP 562), so ``import prime_core`` — and ``prime --help`` — costs no torch
import; ``from prime_core import load_model`` works as usual.
"""

from __future__ import annotations

import importlib

#: public name → the module (under prime_core) that defines it
_EXPORTS = {
    "build_dataset": "runs.build", "build_model": "runs.build", "load_model": "runs.build", "save_model": "runs.build",
    "Checkpoint": "runs.checkpoint", "read_checkpoint": "runs.checkpoint", "save_checkpoint": "runs.checkpoint",
    "Config": "runs.config", "DataConfig": "runs.config", "EvalConfig": "runs.config", "ModelConfig": "runs.config",
    "SampleConfig": "runs.config", "TrainConfig": "runs.config", "load_config": "runs.config",
    "SubTokenEncoder": "diffusion.encoder",
    "CheckpointError": "errors", "ConfigError": "errors", "PrimeError": "errors", "RegistryError": "errors",
    "check_count": "errors", "first_line": "errors",
    "hookimpl": "plugin.hookspecs",
    "expected_idle_steps": "diffusion.idle", "idle_report": "diffusion.idle", "simulate_idle_steps": "diffusion.idle",
    "Backbone": "interfaces", "BackboneSpec": "interfaces", "ByteLengths": "interfaces", "Dataset": "interfaces",
    "Exporter": "interfaces", "KnownDensity": "interfaces", "Presentation": "interfaces", "presentation": "interfaces",
    "Metric": "interfaces", "MetricResult": "interfaces", "NoiseSchedule": "interfaces",
    "Parameterization": "interfaces", "Runtime": "interfaces", "Sampler": "interfaces", "SubTokenMap": "interfaces",
    "TextPrompts": "interfaces", "Tokenizer": "interfaces", "Trainer": "interfaces",
    "PrimeModel": "diffusion.model",
    "Registry": "plugin.registry", "get_registry": "plugin.default", "new_registry": "plugin.default",
    "AncestralSampler": "sampling.ancestral", "SampleResult": "sampling.ancestral",
    "BaseBMap": "diffusion.subtokens", "smallest_base": "diffusion.subtokens",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name == "__version__":  # prime_core/__about__.py: the single source the build reads too (no torch import)
        from .__about__ import __version__ as value

        globals()[name] = value
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prime_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
