"""Public names keep their import paths (issue 20): the core's modules moved into packages by concept, and every
name that ``prime_core``, ``prime_core.api`` and ``prime_core.cliargs`` offered before the move still imports
from there. The lists are the names as of the move (docs/plugins.md, "Compatibility policy"): a name leaves
them only after a deprecation period."""

from __future__ import annotations

import importlib
import warnings

import pytest

ROOT = """
    AncestralSampler Backbone BackboneSpec BaseBMap ByteLengths Checkpoint CheckpointError Config ConfigError
    DataConfig Dataset EvalConfig Exporter KnownDensity Metric MetricResult ModelConfig NoiseSchedule
    Parameterization Presentation PrimeError PrimeModel Registry RegistryError Runtime SampleConfig SampleResult
    Sampler SubTokenEncoder SubTokenMap TextPrompts Tokenizer TrainConfig Trainer build_dataset build_model
    check_count expected_idle_steps first_line get_registry hookimpl idle_report load_config load_model
    new_registry presentation read_checkpoint save_checkpoint save_model simulate_idle_steps smallest_base
""".split()

API = """
    ANY AncestralSampler BEST_NAME Backbone BackboneSpec BaseBMap BestSoFar ByteLengths CHECKPOINT_NAME
    CONFIDENCE_KINDS Checkpoint CheckpointError Component ConfidenceSampler Config ConfigError DEVICE_CHOICES
    DEVICE_HELP Dataset EVENT_TOKEN Exporter FirstHittingSampler GREEDY_TEMPERATURE Generation KEEP_CHOICES
    KINDS KnownDensity LinearSchedule LossWatch MAX_CONFIG_BYTES MAX_EVAL_TEXT_BYTES MAX_JSON_BYTES
    MAX_PROMPTS_BYTES MAX_SOURCE_TEXT_BYTES MLPBackbone Metric MetricResult NEW_WORD NoiseSchedule
    NonFiniteError Parameterization PluginInfo Presentation PrimeError PrimeModel Prompt REMASK REVEAL
    REVEAL_TIME Registry RegistryError RemdmSampler Runtime SPACED SampleResult Sampler Step SubTokenMap
    TENSORBOARD_DIR TOKEN TextPrompts Tokenizer TrainLog Trainer TrainingDiverged UnknownComponentError
    ValidBound Validator WordBoundaries __version__ all_sequences ancestral_update batch_indices block_seed
    bound_label bound_relation boundary_kinds build_dataset build_model build_training_loss categorical
    check_count check_output_file check_outputs check_regular_file check_resume_config check_resume_steps
    check_writable checkpoint_exists claim conditional_nelbo consistent dataset_for_checkpoint decode_row
    distribution_version draw_tokens encode_infill encode_prompt evaluating exact_log_likelihood exact_nelbo
    exact_tstep_log_likelihood expected_idle_steps filter_log_probs filter_scores finish_keep finish_training
    first_line fixed_rows generate generate_prompted get_registry gumbel gumbel_from_uniform held_out_rows
    inverse_cdf is_eval_step is_url keeps_best key_words learning_rate load_config load_model local_out_dir
    mask_set_weight matplotlib_pyplot metric_kind model_device model_metadata new_registry optional_import
    parse_device_spec philox4x32 plot_loss_curve presentation read_bounded read_checkpoint read_text_bounded
    remask_reveal_probability require require_tensorboard resolve_device resolve_sizes result_row reveal_counts
    reveal_probability reveal_uniforms reveal_units revealed_sets row_keys row_seeds sample_mask save_checkpoint
    save_model sigma_max smallest_base start_over template_parts token_uniforms trim_metrics ucl95 uniforms
    unit_confidence validation_metric window_plan with_word_boundaries word_start_table write_report_markdown
""".split()

CLIARGS = """
    DEBUG_HELP EXIT_INTERNAL EXIT_USAGE MAX_COUNT MAX_MC MAX_SAMPLES MAX_SEED MAX_STEPS Parser USER_ERRORS
    add_device count debug_enabled device error_line given parse_fixed program real run_command samples seed
    steps temperature top_p
""".split()

#: names that are deprecated (still importable, with a DeprecationWarning) and what replaces them
DEPRECATED: dict[str, str] = {"gumbel": "draw_tokens"}


@pytest.mark.parametrize("module,names", [("prime_core", ROOT), ("prime_core.api", API),
                                          ("prime_core.cliargs", CLIARGS)])
def test_every_public_name_imports_from_its_old_path(module, names):
    mod = importlib.import_module(module)
    missing = []
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if name in DEPRECATED else "error", DeprecationWarning)
            try:
                getattr(mod, name)
            except AttributeError:
                missing.append(name)
    assert not missing, f"{module} lost public names: {missing}"


def test_root_and_api_agree():
    """A name offered by both ``prime_core`` and ``prime_core.api`` is the same object."""
    import prime_core
    import prime_core.api

    for name in set(ROOT) & set(API):
        assert getattr(prime_core, name) is getattr(prime_core.api, name), name


def test_package_docstrings_say_what_they_hold():
    """Each package of the core opens with a docstring (what it holds; internal or public)."""
    import pkgutil

    import prime_core

    packages = [m.name for m in pkgutil.walk_packages(prime_core.__path__, "prime_core.") if m.ispkg]
    assert {"prime_core.diffusion", "prime_core.sampling", "prime_core.runs", "prime_core.plugin",
            "prime_core.cli", "prime_core.builtin"} <= set(packages)
    for name in packages:
        doc = importlib.import_module(name).__doc__ or ""
        assert len(doc.strip()) > 40, f"{name} has no docstring saying what it holds"


def test_a_deprecated_name_warns_and_still_works():
    import torch

    import prime_core.api

    with pytest.warns(DeprecationWarning, match="gumbel is deprecated"):
        gumbel = prime_core.api.gumbel
    g = gumbel((1000,), torch.Generator().manual_seed(0))
    assert torch.isfinite(g).all() and abs(float(g.mean()) - 0.5772) < 0.1  # the Euler–Mascheroni mean
