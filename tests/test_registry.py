"""Plugin discovery and registration (pluggy, register-callback style)."""

import importlib.metadata as md
import types

import pytest

from prime_core import NoiseSchedule, RegistryError, hookimpl
from prime_core.registry import KINDS, Registry, new_registry
from prime_core.schedules import LinearSchedule


class MySchedule(LinearSchedule):
    name = "mine"


class DupPlugin:
    @hookimpl
    def register_schedules(self, register):
        register("cosine", MySchedule)


class GoodPlugin:
    @hookimpl
    def register_schedules(self, register):
        register("mine", MySchedule)


def test_builtins_are_registered_through_the_hooks(registry):
    assert "base-b" in registry.names("map")
    assert {"carry-over", "joint", "independent"} <= set(registry.names("head"))
    assert registry.get("schedule", "cosine").distribution == "prime-core"
    assert set(KINDS) == {"map", "schedule", "backbone", "head", "sampler", "tokenizer", "dataset", "trainer",
                          "exporter", "metric", "runtime"}


def test_throwaway_plugin_registers_a_schedule(registered):
    reg = registered(GoodPlugin())
    comp = reg.get("schedule", "mine")
    assert comp.obj is MySchedule and comp.distribution == "throwaway-dist"
    assert reg.plugins["throwaway"].components == {"schedule": ["mine"]}


def test_duplicate_name_names_both_distributions(registered):
    with pytest.raises(RegistryError, match=r"prime-core.*throwaway-dist"):
        registered(DupPlugin())


def test_unknown_name_lists_the_choices(registry):
    with pytest.raises(RegistryError, match=r"unknown schedule 'nope'; available: .*cosine.*linear"):
        registry.get("schedule", "nope")


def test_wrong_kind_is_a_type_error(registered):
    class Bad:
        @hookimpl
        def register_schedules(self, register):
            register("bad", dict)

    reg = registered(Bad())  # recorded against the plugin (listed by `prime plugins`), never registered
    assert "TypeError" in reg.plugins["throwaway"].error
    assert "must be a subclass of NoiseSchedule" in reg.plugins["throwaway"].error
    assert "bad" not in reg.names("schedule")


def test_misspelled_hook_is_reported_not_ignored():
    class Typo:
        @hookimpl
        def register_schedule(self, register):  # missing "s"
            pass

    reg = new_registry(load_plugins=False)
    reg.add_plugin(Typo(), "typo", "typo-dist", "1")
    assert "invalid plugin" in reg.plugins["typo"].error


def _fake_entry_points(monkeypatch, eps):
    monkeypatch.setattr(md, "entry_points", lambda group=None: [e for e in eps if e.group == group])


def _ep(name, value, dist_name):
    ep = md.EntryPoint(name=name, value=value, group="prime")
    dist = types.SimpleNamespace(name=dist_name, version="1.0")
    return types.SimpleNamespace(name=name, group="prime", dist=dist, load=ep.load)


def test_broken_plugin_is_listed_with_its_error_and_skipped(monkeypatch):
    good = types.ModuleType("good_prime_plugin")
    good.register_schedules = hookimpl(lambda register: register("mine", MySchedule))
    monkeypatch.setitem(__import__("sys").modules, "good_prime_plugin", good)
    _fake_entry_points(monkeypatch, [_ep("broken", "no_such_module_xyz", "broken-dist"),
                                     _ep("good", "good_prime_plugin", "good-dist")])
    reg = new_registry()
    assert "ModuleNotFoundError" in reg.plugins["broken"].error
    assert reg.get("schedule", "mine").distribution == "good-dist"  # the broken one did not stop discovery


def test_same_entry_point_name_twice_is_refused_loudly(monkeypatch):
    _fake_entry_points(monkeypatch, [_ep("x", "prime_core.builtin.mlp", "first"),
                                     _ep("x", "prime_core.builtin.mlp", "second")])
    reg = new_registry()
    assert any("also used by first" in (p.error or "") for p in reg.plugins.values())


def test_prime_load_plugins_restricts_loading(monkeypatch):
    _fake_entry_points(monkeypatch, [_ep("broken", "no_such_module_xyz", "broken-dist")])
    monkeypatch.setenv("PRIME_LOAD_PLUGINS", "")
    reg = new_registry()
    assert "broken" not in reg.plugins


def test_hook_order_is_builtins_first_then_plugins_in_discovery_order():
    log = []

    def make(tag):
        class P:
            @hookimpl
            def register_schedules(self, register):
                log.append(("schedule", tag))

            @hookimpl
            def register_maps(self, register):
                log.append(("map", tag))
        return P()

    reg = Registry()
    reg.add_plugin(make("a"), "a", "a-dist", "1")
    reg.add_plugin(make("b"), "b", "b-dist", "1")
    reg.collect()
    assert log == [("map", "a"), ("map", "b"), ("schedule", "a"), ("schedule", "b")]


def test_build_turns_bad_options_into_registry_errors(registry):
    with pytest.raises(RegistryError, match="bad options for schedule 'linear'"):
        registry.build("schedule", "linear", nope=1)
    with pytest.raises(RegistryError, match="exponent must be > 0"):
        registry.build("schedule", "polynomial", exponent=-1)
    assert isinstance(registry.build("schedule", "cosine"), NoiseSchedule)
