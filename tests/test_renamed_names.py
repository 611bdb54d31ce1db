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

