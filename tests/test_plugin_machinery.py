"""The plugin machinery after the split (issue 20): one way to call hooks, names stated once, presets as options,
a collision that skips only the colliding component, warnings that start with "warning:"."""

from __future__ import annotations

import logging

import pytest

from prime_core import hookimpl
from prime_core.diffusion.schedules import LinearSchedule
from prime_core.diffusion.subtokens import BaseBMap
from prime_core.plugin.default import new_registry
from prime_core.plugin.shipped_configs import shipped_configs


class NamedSchedule(LinearSchedule):
    name = "named-once"


class CollidingPlugin:
    """One component collides with a built-in ("base-b"); another does not; it ships a config."""

    @hookimpl
    def register_maps(self, register):
        class ProbeMap(BaseBMap):
            pass

        register("base-b", ProbeMap)

    @hookimpl
    def register_schedules(self, register):
        register(NamedSchedule)  # the name comes from the class: stated once

    @hookimpl
    def register_configs(self, register):
        register("probe-toy", __file__, description="probe")


@pytest.fixture
def colliding():
    reg = new_registry(load_plugins=False)
    reg.add_plugin(CollidingPlugin(), "probe", "prime-plugin-probe", "0.1")
    reg.collect()
    return reg


def test_a_collision_skips_only_the_colliding_component(colliding):
    assert colliding.get("map", "base-b").distribution == "prime-core"
    assert colliding.get("schedule", "named-once").distribution == "prime-plugin-probe"
    info = colliding.plugins["probe"]
    assert "already registered by prime-core" in info.error and not info.broken
    configs = shipped_configs(colliding)  # the plugin's configs remain (they all disappeared before issue 20)
    assert configs["probe-toy"].distribution == "prime-plugin-probe"
    assert configs["toy2d"].distribution == "prime-core"


def test_a_broken_plugin_ships_no_config():
    class Raises(CollidingPlugin):
        @hookimpl
        def register_schedules(self, register):
            raise RuntimeError("boom")

    reg = new_registry(load_plugins=False)
    reg.add_plugin(Raises(), "raises", "raises-dist", "1")
    reg.collect()
    assert reg.plugins["raises"].broken and "boom" in reg.plugins["raises"].error
    assert "probe-toy" not in shipped_configs(reg)


def test_plugin_warnings_start_with_warning(colliding, caplog):
    with caplog.at_level(logging.WARNING, logger="prime"):
        colliding.collect()
    messages = [r.getMessage() for r in caplog.records if r.name == "prime"]
    assert messages and all(m.startswith("warning: ") for m in messages), messages


def test_register_without_a_name_needs_a_name_attribute():
    class Nameless(LinearSchedule):
        name = ""

    class Plugin:
        @hookimpl
        def register_schedules(self, register):
            register(Nameless)

    reg = new_registry(load_plugins=False)
    reg.add_plugin(Plugin(), "nameless", "nameless-dist", "1")
    reg.collect()
    assert "needs a class with a `name` attribute" in reg.plugins["nameless"].error


def test_a_preset_is_options_not_a_subclass():
    from prime_core import BackboneSpec
    from prime_core.builtin.mlp import MLPBackbone

    class Plugin:
        @hookimpl
        def register_backbones(self, register):
            register("mlp-wide", MLPBackbone, hidden=48)

    reg = new_registry(load_plugins=False)
    reg.add_plugin(Plugin(), "presets", "presets-dist", "1")
    comp = reg.get("backbone", "mlp-wide")
    assert comp.obj is MLPBackbone and comp.options == {"hidden": 48}
    spec = BackboneSpec(out_dim=5, base=5, ell=1, length=3, width=8, num_classes=5)
    wide = reg.build("backbone", "mlp-wide", spec)
    narrow = reg.build("backbone", "mlp-wide", spec, hidden=8)  # the config's option wins over the preset
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in narrow.parameters())


def test_config_hooks_go_through_pluggy_so_wrappers_see_them(colliding):
    seen = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def register_configs(self, register):
            seen.append("before")
            result = yield
            seen.append("after")
            return result

    colliding.add_plugin(Wrapper(), "wrapper", "wrapper-dist", "1")
    assert "probe-toy" in shipped_configs(colliding)
    assert seen == ["before", "after"]


class BinaryOnlyMap(BaseBMap):
    """A map that declares a narrower domain: ℓ ≤ 2 only."""

    name = "binary-only"

    @classmethod
    def supports(cls, num_classes, ell):
        return ell <= 2


def test_a_map_outside_its_declared_domain_is_refused_at_build():
    from prime_core import Config, ConfigError, build_model

    class Plugin:
        @hookimpl
        def register_maps(self, register):
            register(BinaryOnlyMap)

    reg = new_registry(load_plugins=False)
    reg.add_plugin(Plugin(), "domain", "domain-dist", "1")
    ok = Config.from_dict({"model": {"num_classes": 6, "length": 2, "ell": 2, "map": "binary-only"}})
    assert build_model(ok, reg).map.ell == 2
    bad = Config.from_dict({"model": {"num_classes": 6, "length": 2, "ell": 3, "width": 63, "map": "binary-only"}})
    with pytest.raises(ConfigError, match="map 'binary-only' is not defined for model.num_classes = 6, model.ell = 3"):
        build_model(bad, reg)


def test_map_conformance_draws_only_within_the_declared_domain():
    from hypothesis import given, settings

    from conformance.checks.maps import _domain
    from conformance.strategies import classes_and_ell

    subject = type("S", (), {"cls": BinaryOnlyMap})()
    seen = []

    @settings(max_examples=60, derandomize=True, database=None)
    @given(_domain(subject, classes_and_ell(max_classes=64, max_ell=4)))
    def run(pair):
        seen.append(pair)

    run()
    assert seen and all(ell <= 2 for _, ell in seen)
