"""The public API for plugin authors, beyond the names of the package root (``prime_core.__all__``).

Everything a distribution other than prime-core imports from the core comes from ``prime_core``,
``prime_core.api`` or ``prime_core.cliargs`` (the CLI plumbing), and never has a leading underscore. These names
follow the compatibility policy in docs/plugins.md ("Compatibility policy"): they change incompatibly only in a
major release, after a deprecation period of one minor release. Every other module of prime-core (and all of
``prime_core.builtin``, the built-in components, which plugins reach by name through the registry) is internal:
it may change in any release. tests/test_public_api.py checks that no plugin in this repository imports
anything else.

Grouped by the phase that needs them (discover → configure → build → train → sample / evaluate / export).
"""

from __future__ import annotations

import prime_core as _prime_core

# configure / build: configs, checkpoints, the registry
from .runs.build import (build_dataset, build_model, build_training_loss, dataset_for_checkpoint, distribution_version,
                    load_model, model_metadata, resolve_sizes, save_model)
from .builtin.mlp import MLPBackbone  # the small reference backbone, for tests and conformance
# train: what any trainer needs to behave like the built-in one (same batches, schedule, checkpoint name)
from .builtin.trainer import CHECKPOINT_NAME, batch_indices, learning_rate
from .runs.checkpoint import Checkpoint, checkpoint_exists, read_checkpoint, save_checkpoint
from .runs.config import Config, check_resume_config, check_resume_steps, load_config
# a plugin's own option records: the core's one-line validators (train.options.x must be …)
from .runs.checks import OptionChecks
# where commands run: the one --device vocabulary (auto, cpu, cuda, cuda:N)
from .device import DEVICE_CHOICES, DEVICE_HELP, parse_device_spec, resolve_device
from .errors import (CheckpointError, ConfigError, NonFiniteError, PrimeError, RegistryError, UnknownComponentError,
                     check_count, first_line)
# likelihood: exact values on enumerable problems (DESIGN §2.4)
# optional dependencies: a missing one is one line naming the extra that installs it
from .extras import matplotlib_pyplot, optional_import, require
from .fileio import (MAX_CONFIG_BYTES, MAX_EVAL_TEXT_BYTES, MAX_JSON_BYTES, MAX_PROMPTS_BYTES, MAX_SOURCE_TEXT_BYTES,
                     check_output_file, check_regular_file, is_url, read_bounded, read_text_bounded)
from .diffusion.block import (block_attention_mask, block_joint_loss, block_log_probs, block_nelbo, block_size_of,
                              block_training_nelbo, block_tstep_nelbo, is_block_model)
from .diffusion.block_exact import (exact_block_log_likelihood, exact_block_nelbo, exact_block_tstep_log_likelihood,
                                    exact_block_tstep_nelbo)
from .sampling.blocks import BlockView, generate_blocks, sample_rows
from .runs.report import finish_training, plot_loss_curve, write_report_markdown
from .diffusion.exact import (all_sequences, exact_log_likelihood, exact_nelbo, exact_tstep_log_likelihood, mask_set_weight,
                    reveal_units, revealed_sets)
from .diffusion.forward import sample_mask
from .diffusion.heads import consistent, subset_log_marginal
from .diffusion.idle import expected_idle_steps
# train: validation on held-out rows, the best checkpoint, metrics.jsonl + TensorBoard (shared by every trainer)
from .runs.keep import BEST_NAME, KEEP_CHOICES, BestSoFar, finish_keep, keeps_best
from .runs.trainlog import TENSORBOARD_DIR, TrainLog, require_tensorboard
# train: the optimizer state's checkpoint layout, shared by every trainer
from .runs.trainstate import load_optimizer_tensors, optimizer_tensors
from .runs.divergence import LossWatch, TrainingDiverged
# evaluate: one labelling rule for every printer (exact "=", bound "≤", estimate's 95 % UCL "≤", objective)
from .runs.evaluate import KINDS, bound_label, bound_relation, metric_kind, result_row, ucl95
from .runs.validation import ValidBound, Validator, evaluating, held_out_rows, is_eval_step, validation_metric
from .interfaces import (Backbone, BackboneSpec, ByteLengths, Dataset, Exporter, KnownDensity, Metric, MetricResult,
                         NoiseSchedule, Parameterization, Presentation, Runtime, Sampler, SubTokenMap, TextPrompts,
                         Tokenizer, Trainer, presentation)
from .diffusion.model import PrimeModel
from .plugin.registry import Component, PluginInfo, Registry
from .plugin.default import get_registry, new_registry
# run folders: one writer per folder, --force semantics shared by every trainer
from .runs.rundir import check_outputs, check_writable, claim, local_out_dir, start_over, trim_metrics
# sample: the pieces of the ancestral sampler that other samplers and runtimes reuse (DESIGN §2.5)
from .sampling.ancestral import (GREEDY_TEMPERATURE, AncestralSampler, SampleResult, Step, ancestral_update, draw_tokens,
                      filter_log_probs, filter_scores, model_device, reveal_probability, reveal_steps,
                      reveal_uniforms, row_seeds, token_uniforms)
from .sampling.first_hitting import FirstHittingSampler
# remasking and confidence-ordered samplers (DESIGN §2.5 item 8); the confidence of a drawn unit
from .sampling.confidence import ConfidenceSampler, reveal_counts
from .sampling.remdm import RemdmSampler, remask_reveal_probability, sigma_max
from .sampling.unit_confidence import CONFIDENCE_KINDS, unit_confidence
# keyed randomness (DESIGN §2.5 item 7): Philox4x32-10 uniforms keyed by (row key, step, position, element, stream)
from .sampling.counter_rng import (EVENT_TOKEN, REMASK, REVEAL, REVEAL_TIME, TOKEN, categorical, gumbel_from_uniform,
                          inverse_cdf, key_words, philox4x32, row_keys, uniforms)
from .diffusion.schedules import LinearSchedule
# text and long sequences: prompts, semi-autoregressive generation, conditional bounds (docs/generation.md)
from .diffusion.conditional import conditional_nelbo
from .sampling.prompts import (ANY, NEW_WORD, SPACED, Prompt, WordBoundaries, boundary_kinds, decode_row, encode_infill,
                      encode_prompt, fixed_rows, generate_prompted, template_parts, with_word_boundaries,
                      word_start_table)
from .sampling.semiar import Generation, block_seed, generate, window_plan
from .diffusion.subtokens import BaseBMap, smallest_base

__version__ = _prime_core.__version__

__all__ = [
    "block_attention_mask", "block_joint_loss", "block_log_probs", "block_nelbo", "block_size_of",
    "block_training_nelbo", "block_tstep_nelbo", "exact_block_log_likelihood", "exact_block_nelbo",
    "exact_block_tstep_log_likelihood", "exact_block_tstep_nelbo", "is_block_model", "BlockView", "generate_blocks",
    "sample_rows",
    "AncestralSampler", "FirstHittingSampler", "RemdmSampler", "ConfidenceSampler", "CONFIDENCE_KINDS",
    "remask_reveal_probability", "reveal_counts", "sigma_max", "unit_confidence",
    "ancestral_update", "categorical", "draw_tokens", "inverse_cdf",
    "EVENT_TOKEN", "REMASK", "REVEAL", "REVEAL_TIME", "TOKEN", "gumbel_from_uniform", "key_words", "model_device", "philox4x32",
    "reveal_steps", "reveal_uniforms", "row_keys", "token_uniforms", "uniforms", "Backbone", "BackboneSpec", "BaseBMap", "CHECKPOINT_NAME", "Checkpoint", "CheckpointError",
    "Component", "Config", "ConfigError", "Dataset", "Exporter", "LinearSchedule", "MLPBackbone", "Metric",
    "MetricResult", "NoiseSchedule", "Parameterization", "PluginInfo", "PrimeError", "PrimeModel", "Registry",
    "RegistryError", "Runtime", "SampleResult", "Sampler", "Step", "SubTokenMap", "Tokenizer", "Trainer",
    "UnknownComponentError", "__version__", "all_sequences", "batch_indices", "build_dataset", "build_model",
    "build_training_loss", "check_resume_config", "checkpoint_exists", "claim", "consistent",
    "dataset_for_checkpoint", "distribution_version", "exact_log_likelihood", "exact_nelbo", "exact_tstep_log_likelihood",
    "expected_idle_steps", "filter_log_probs", "filter_scores", "GREEDY_TEMPERATURE", "get_registry",
    "learning_rate", "load_config",
    "load_model", "local_out_dir", "mask_set_weight", "matplotlib_pyplot", "model_metadata", "new_registry",
    "optional_import", "plot_loss_curve", "require", "check_count", "first_line", "finish_training", "write_report_markdown", "presentation",
    "Presentation", "ByteLengths", "KnownDensity", "TextPrompts",
    "Generation", "Prompt", "block_seed", "conditional_nelbo", "decode_row", "encode_infill", "encode_prompt",
    "fixed_rows", "generate", "template_parts", "window_plan",
    "ANY", "NEW_WORD", "SPACED", "WordBoundaries", "boundary_kinds", "generate_prompted", "with_word_boundaries",
    "word_start_table",
    "DEVICE_CHOICES", "DEVICE_HELP", "parse_device_spec", "resolve_device",
    "MAX_CONFIG_BYTES", "MAX_EVAL_TEXT_BYTES", "MAX_JSON_BYTES", "MAX_PROMPTS_BYTES", "MAX_SOURCE_TEXT_BYTES",
    "check_output_file", "check_regular_file", "is_url", "read_bounded", "read_text_bounded",
    "read_checkpoint", "resolve_sizes", "reveal_probability", "reveal_units", "revealed_sets", "row_seeds",
    "sample_mask", "save_checkpoint", "save_model", "smallest_base", "start_over", "trim_metrics",
    "check_outputs", "check_writable", "check_resume_steps",
    "BEST_NAME", "KEEP_CHOICES", "BestSoFar", "finish_keep", "keeps_best", "TENSORBOARD_DIR", "TrainLog",
    "require_tensorboard", "ValidBound", "Validator", "evaluating", "held_out_rows", "is_eval_step",
    "validation_metric", "LossWatch", "TrainingDiverged", "load_optimizer_tensors", "optimizer_tensors", "OptionChecks",
    "KINDS", "NonFiniteError", "bound_label", "bound_relation", "metric_kind", "result_row", "ucl95",
]

#: deprecated public names (docs/plugins.md, "Compatibility policy"): still importable for one minor release,
#: with a DeprecationWarning naming what replaces them
_DEPRECATED = {"gumbel": "the keyed draw_tokens, or gumbel_from_uniform on your own uniforms"}


def __getattr__(name: str):
    if name in _DEPRECATED:
        import warnings

        warnings.warn(f"prime_core.api.{name} is deprecated and will be removed in the next minor release; use "
                      f"{_DEPRECATED[name]}", DeprecationWarning, stacklevel=2)
        return _gumbel
    raise AttributeError(f"module 'prime_core.api' has no attribute {name!r}")


def _gumbel(shape, generator, dtype=None):
    """Standard Gumbel noise −log(−log U) from a stateful ``torch.Generator`` (deprecated: unused by the core)."""
    import torch

    dtype = dtype or torch.float32
    u = torch.rand(shape, generator=generator, dtype=dtype)
    return -torch.log(-torch.log(u.clamp(torch.finfo(dtype).tiny, 1.0 - torch.finfo(dtype).eps)))
