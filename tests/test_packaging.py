"""Packaging: shipped configs by name, which distribution provides a missing component, optional extras."""

import importlib.metadata as md
import json
import os
import subprocess
import sys

import pytest

import prime_core
from prime_core import hookimpl, load_config
from prime_core.plugin.distributions import DISTRIBUTIONS, distribution_hint
from prime_core.errors import ConfigError, RegistryError
from prime_core.plugin.default import new_registry
from prime_core.plugin.shipped_configs import is_config_name, shipped_configs


def prime(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "prime_core", *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, **(env or {})))


def test_version_has_one_source():
    from prime_core.__about__ import __version__

    assert prime_core.__version__ == __version__
    assert md.version("prime-core") == __version__


def test_core_ships_toy2d_and_it_loads_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    configs = shipped_configs(new_registry(load_plugins=False))
    assert configs["toy2d"].distribution == "prime-core"
    assert load_config("toy2d").data.dataset == "toy-2d"
    assert load_config("toy2d", ["model.ell=1"]).model.ell == 1


def test_paths_and_urls_still_load(tmp_path, monkeypatch):
    (tmp_path / "toy2d").write_text("[model]\nell = 3\nwidth = 6\n")  # an existing file wins over a name
    monkeypatch.chdir(tmp_path)
    assert load_config("toy2d").model.ell == 3
    assert load_config(str(tmp_path / "toy2d")).model.ell == 3
    (tmp_path / "c.toml").write_text("[model]\nell = 1\n")
    assert load_config(f"file://{tmp_path / 'c.toml'}").model.ell == 1
    assert not is_config_name("c.toml") and not is_config_name("memory://x") and not is_config_name("a/b")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("missing.toml")


def test_unknown_config_name_lists_the_shipped_ones(registered):
    with pytest.raises(ConfigError, match="unknown config 'nope'.*shipped configs: .*toy2d"):
        load_config("nope")


def test_a_plugin_ships_a_config_and_duplicates_are_refused(registered, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("# my config\n[model]\nell = 1\n")

    class Ships:
        @hookimpl
        def register_configs(self, register):
            register("mine", path)

    class Twice:
        @hookimpl
        def register_configs(self, register):
            register("toy2d", str(path))

    reg = registered(Ships(), name="ships", distribution="ships-dist")
    entry = shipped_configs(reg)["mine"]
    assert (entry.distribution, entry.description) == ("ships-dist", "my config")
    reg = registered(Twice(), name="twice", distribution="twice-dist")
    with pytest.raises(RegistryError, match="shipped twice: by prime-core and by twice-dist"):
        shipped_configs(reg)


def test_config_list_and_show(tmp_path):
    out = prime("config", "list", "--json", cwd=tmp_path, env={"PRIME_LOAD_PLUGINS": ""})
    assert out.returncode == 0, out.stderr
    assert {"name": "toy2d", "distribution": "prime-core", "plugin": "prime-core"}.items() <= \
        {k: v for r in json.loads(out.stdout) if r["name"] == "toy2d" for k, v in r.items()}.items()
    shown = prime("config", "show", "toy2d", cwd=tmp_path)
    assert shown.returncode == 0 and "[model]" in shown.stdout
    (tmp_path / "my.toml").write_text(shown.stdout)
    assert load_config(str(tmp_path / "my.toml")) == load_config("toy2d")
    bad = prime("config", "show", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown config 'nope'" in bad.stderr


def test_unknown_component_names_the_distribution_that_provides_it(monkeypatch):
    monkeypatch.setattr(md, "version", lambda name: (_ for _ in ()).throw(md.PackageNotFoundError(name)))
    reg = new_registry(load_plugins=False)
    with pytest.raises(RegistryError, match="unknown dataset 'text'; it is provided by prime-plugin-text, which "
                                            "is not installed: pip install prime-plugin-text; available: "):
        reg.get("dataset", "text")
    with pytest.raises(RegistryError, match=r"unknown backbone 'nope'; available: mlp$"):
        reg.get("backbone", "nope")
    assert distribution_hint("config", "main").startswith("it is provided by prime-plugin-text")


def test_the_distribution_table_matches_what_installed_distributions_register():
    """Every installed distribution of this repository registers exactly what DISTRIBUTIONS says it does."""
    reg = new_registry(load_plugins=True)
    configs = shipped_configs(reg)
    checked = 0
    for dist, kinds in DISTRIBUTIONS.items():
        infos = [i for i in reg.plugins.values() if i.distribution == dist and not i.error]
        if not infos:
            continue
        checked += 1
        registered = {k: sorted(v) for i in infos for k, v in i.components.items()}
        shipped = sorted(c.name for c in configs.values() if c.distribution == dist)
        if shipped:
            registered["config"] = shipped
        assert registered == {k: sorted(v) for k, v in kinds.items()}, dist
    if not checked:
        pytest.skip("none of this repository's plugins is installed")


def test_missing_matplotlib_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    from prime_core import extras
    from prime_core.runs.report import plot_loss_curve

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    monkeypatch.setattr(extras, "_warned", set())
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    assert plot_loss_curve(str(tmp_path / "metrics.jsonl"), str(tmp_path / "loss.png")) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "loss.png" in err and "pip install 'prime-core[plots]'" in err
    assert not (tmp_path / "loss.png").exists()


def test_require_names_the_extra():
    from prime_core.errors import PrimeError
    from prime_core.extras import require

    with pytest.raises(PrimeError, match=r"needs no_such_module_xyz, .*pip install 'prime-export\[onnx\]'"):
        require("no_such_module_xyz", "prime-export[onnx]", "exporting")
