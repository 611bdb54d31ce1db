"""gumbel_dtype → draw_dtype (issue 20): the draw is an inverse-CDF draw, not Gumbel-max, so the option is named
for what it sets; the old name is still accepted, with a deprecation warning, in configs and on the CLI."""

from __future__ import annotations

import pytest

from prime_core import Config, ConfigError


def test_a_config_with_the_old_key_still_loads_with_a_warning(capsys):
    with pytest.warns(DeprecationWarning, match="sample.gumbel_dtype is deprecated: use sample.draw_dtype"):
        config = Config.from_toml('[sample]\ngumbel_dtype = "float32"\n')
    assert config.sample.draw_dtype == "float32"
    assert capsys.readouterr().err.startswith("warning: sample.gumbel_dtype is deprecated")


def test_both_names_at_once_is_refused():
    with pytest.raises(ConfigError, match="sets both gumbel_dtype and draw_dtype"):
        Config.from_toml('[sample]\ngumbel_dtype = "float32"\ndraw_dtype = "float64"\n')


def test_the_new_key_loads_silently(recwarn):
    assert Config.from_toml('[sample]\ndraw_dtype = "float32"\n').sample.draw_dtype == "float32"
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("flag", ["--draw-dtype", "--gumbel-dtype"])
def test_prime_sample_takes_both_spellings(flag, capsys):
    from prime_core.cli.app import build_parser

    if flag == "--gumbel-dtype":
        with pytest.warns(DeprecationWarning, match="--gumbel-dtype is deprecated: use --draw-dtype"):
            args = build_parser().parse_args(["sample", "ckpt", flag, "float32"])
        assert capsys.readouterr().err.startswith("warning: --gumbel-dtype is deprecated")
    else:
        args = build_parser().parse_args(["sample", "ckpt", flag, "float32"])
    assert args.draw_dtype == "float32"



# ------------------------------------------------------------------ the samplers' keyword (one helper, both ways)
def _old_style_sampler():
    """A sampler written against the old interface: its ``sample`` takes ``gumbel_dtype=`` only; it records
    what it received."""
    import torch

    from prime_core.api import AncestralSampler

    class OldSampler(AncestralSampler):
        name = "old-sampler"

        def sample(self, model, num_samples, *, gumbel_dtype=torch.float32, **options):
            self.got = gumbel_dtype
            return super().sample(model, num_samples, draw_dtype=gumbel_dtype, **options)

    return OldSampler


def test_an_old_caller_passing_gumbel_dtype_gets_the_same_tokens_with_a_warning(tiny_model):
    import torch

    from prime_core.api import AncestralSampler

    model = tiny_model()
    new = AncestralSampler().sample(model, 4, steps=6, seed=1, draw_dtype=torch.float64)
    with pytest.warns(DeprecationWarning, match="gumbel_dtype= is deprecated: use draw_dtype="):
        old = AncestralSampler().sample(model, 4, steps=6, seed=1, gumbel_dtype=torch.float64)
    assert torch.equal(new.tokens, old.tokens)


def test_both_keywords_at_once_is_a_type_error(tiny_model):
    import torch

    from prime_core.api import AncestralSampler

    with pytest.raises(TypeError, match="both gumbel_dtype= and draw_dtype="):
        AncestralSampler().sample(tiny_model(), 2, steps=2, draw_dtype=torch.float64, gumbel_dtype=torch.float64)


def test_the_core_calling_an_old_sampler_passes_draw_dtype_as_gumbel_dtype(tiny_model):
    """`sample_rows` (what prime sample / prime run call) passes draw_dtype=; an old sampler receives it under
    its own name, and its author was warned once, when the class was defined."""
    import torch

    from prime_core.api import sample_rows

    with pytest.warns(DeprecationWarning, match="OldSampler.sample takes gumbel_dtype=, renamed draw_dtype="):
        sampler = _old_style_sampler()()
    res = sample_rows(tiny_model(), sampler, 3, steps=4, seed=0, draw_dtype=torch.float64)
    assert sampler.got is torch.float64 and res.tokens.shape[0] == 3


def test_an_old_caller_of_an_old_sampler_is_warned_and_still_served(tiny_model, recwarn):
    import torch

    sampler = _old_style_sampler()()
    with pytest.warns(DeprecationWarning, match="gumbel_dtype= is deprecated"):
        sampler.sample(tiny_model(), 2, steps=2, seed=0, gumbel_dtype=torch.float64)
    assert sampler.got is torch.float64


def test_a_sampler_taking_options_receives_the_new_name(tiny_model):
    import torch

    from prime_core.api import Sampler

    class Options(Sampler):
        name = "options"

        def sample(self, model, num_samples, **options):
            self.options = options

    s = Options()
    with pytest.warns(DeprecationWarning):
        s.sample(tiny_model(), 1, gumbel_dtype=torch.float64)
    assert s.options == {"draw_dtype": torch.float64}


def test_an_old_runtime_receives_draw_dtype_under_its_old_name():
    from prime_core.api import Runtime

    with pytest.warns(DeprecationWarning, match="OldRuntime.sampler takes gumbel_dtype="):
        class OldRuntime(Runtime):
            name = "old-runtime"

            def sampler(self, model, config, checkpoint, *, step_model=None, gumbel_dtype=None, ckpt_meta=None,
                        top_p=None):
                return gumbel_dtype

    assert OldRuntime().sampler(None, None, "c", draw_dtype="float64") == "float64"


def test_a_report_json_written_before_the_rename_still_renders(tmp_path):
    """report.json's sampling key is now ``draw_dtype``; an old one (``gumbel_dtype``) still renders."""
    from prime_core.runs.report import _draw_dtype

    assert _draw_dtype({"gumbel_dtype": "float64"}) == "float64"
    assert _draw_dtype({"draw_dtype": "float32"}) == "float32"
