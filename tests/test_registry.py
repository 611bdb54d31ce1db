"""Plugin discovery and registration (pluggy, register-callback style)."""

import importlib.metadata as md
import types

import pytest

from prime_core import NoiseSchedule, RegistryError, hookimpl
from prime_core.plugin.registry import KINDS, Registry
from prime_core.plugin.default import new_registry
from prime_core.diffusion.schedules import LinearSchedule


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


def test_duplicate_of_a_builtin_is_skipped_with_a_warning_naming_both(registered, caplog):
    reg = registered(DupPlugin())
    assert reg.get("schedule", "cosine").distribution == "prime-core"  # the built-in keeps its name
    error = reg.plugins["throwaway"].error
    assert "schedule 'cosine' is already registered by prime-core" in error and "throwaway-dist" in error
    assert any("throwaway-dist" in r.getMessage() and "prime-core" in r.getMessage() for r in caplog.records)
    assert reg.plugins["throwaway"].components == {}


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


def test_hook_order_is_pluggys_last_registered_first():
    """Hooks go through pluggy's hook caller: without tryfirst/trylast the last registered plugin runs first,
    kinds in KINDS order."""
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
    assert log == [("map", "b"), ("map", "a"), ("schedule", "b"), ("schedule", "a")]


def test_build_turns_bad_options_into_registry_errors(registry):
    with pytest.raises(RegistryError, match="bad options for schedule 'linear'"):
        registry.build("schedule", "linear", nope=1)
    with pytest.raises(RegistryError, match="exponent must be > 0"):
        registry.build("schedule", "polynomial", exponent=-1)
    assert isinstance(registry.build("schedule", "cosine"), NoiseSchedule)


# ---- hooks go through pluggy's hook caller (issue 13) ------------------------------------------------------
def _ordered_plugin(tag, log, **opts):
    class P:
        @hookimpl(**opts)
        def register_schedules(self, register):
            log.append(tag)
            register(f"s-{tag}", MySchedule)
    return P()


def test_tryfirst_and_trylast_change_the_call_order():
    log = []
    reg = Registry()
    reg.add_plugin(_ordered_plugin("last", log, trylast=True), "last", "last-dist", "1")
    reg.add_plugin(_ordered_plugin("plain", log), "plain", "plain-dist", "1")
    reg.add_plugin(_ordered_plugin("first", log, tryfirst=True), "first", "first-dist", "1")
    reg.collect()
    assert log == ["first", "plain", "last"]
    # each registration is still attributed to the plugin (and distribution) that made it
    assert {n: reg.get("schedule", f"s-{n}").distribution for n in log} == {
        "first": "first-dist", "plain": "plain-dist", "last": "last-dist"}


def test_tryfirst_decides_which_of_two_plugins_keeps_a_name():
    log = []

    def claimer(tag, **opts):
        class P:
            @hookimpl(**opts)
            def register_schedules(self, register):
                log.append(tag)
                register("shared", MySchedule)
        return P()

    reg = Registry()
    reg.add_plugin(claimer("early", tryfirst=True), "early", "early-dist", "1")
    reg.add_plugin(claimer("late"), "late", "late-dist", "1")
    reg.collect()
    assert reg.get("schedule", "shared").distribution == "early-dist"
    assert "already registered by early-dist" in reg.plugins["late"].error
    assert reg.plugins["early"].error is None


@pytest.mark.parametrize("style", ["hookwrapper", "wrapper"])
def test_a_hook_wrapper_runs_around_the_others_and_can_register(style):
    log = []

    class Wrapper:
        @hookimpl(**{style: True})
        def register_schedules(self, register):
            log.append("before")
            outcome = yield
            log.append("after")
            register("from-wrapper", MySchedule)  # attributed to the wrapper's plugin
            if style == "wrapper":
                return outcome

    reg = Registry()
    reg.add_plugin(_ordered_plugin("plain", log), "plain", "plain-dist", "1")
    reg.add_plugin(Wrapper(), "wrap", "wrap-dist", "1")
    reg.collect()
    assert log == ["before", "plain", "after"]
    assert reg.get("schedule", "from-wrapper").distribution == "wrap-dist"
    assert reg.plugins["wrap"].error is None


def test_a_plugin_whose_hook_raises_breaks_only_itself():
    """Runs before the built-ins (pluggy calls the last registered first): its failure must not cost them."""
    class Raises:
        @hookimpl(tryfirst=True)
        def register_schedules(self, register):
            register("half-done", MySchedule)
            raise RuntimeError("boom")

        @hookimpl
        def register_maps(self, register):
            pass

    reg = new_registry(load_plugins=False)
    reg.add_plugin(Raises(), "raises", "raises-dist", "1")
    reg.add_plugin(GoodPlugin(), "good", "good-dist", "1")
    reg.collect()
    assert "register_schedules failed: RuntimeError: boom" in reg.plugins["raises"].error
    assert "RuntimeError: boom" in reg.plugins["raises"].traceback
    assert {"cosine", "linear", "mine"} <= set(reg.names("schedule"))
    assert "half-done" not in reg.names("schedule")  # what it registered before raising is dropped too
    assert "base-b" in reg.names("map")


def test_a_builtin_keeps_its_name_even_when_a_plugin_registers_it_first():
    class Early:
        @hookimpl(tryfirst=True)
        def register_maps(self, register):
            from prime_core import BaseBMap

            class Imposter(BaseBMap):
                pass
            register("base-b", Imposter)

    reg = new_registry(load_plugins=False)
    reg.add_plugin(Early(), "early", "early-dist", "2.0")
    reg.collect()
    comp = reg.get("map", "base-b")
    assert comp.distribution == "prime-core" and comp.obj.__name__ == "BaseBMap"
    assert "map 'base-b' is already registered by prime-core" in reg.plugins["early"].error
    assert reg.plugins["early"].components == {}


# ---- one bad plugin never breaks the tool: fake installed distributions -------------------------------------
class _FakeDist(md.Distribution):
    """An installed distribution that exists only in memory (as pluggy's own tests fake them)."""

    def __init__(self, name, version, entry_points):
        self._name, self._version, self._eps = name, version, entry_points

    def read_text(self, filename):
        if filename == "METADATA":
            return f"Metadata-Version: 2.1\nName: {self._name}\nVersion: {self._version}\n"
        if filename == "entry_points.txt":
            return "[prime]\n" + "".join(f"{n} = {v}\n" for n, v in self._eps)
        return None

    def locate_file(self, path):
        return path


@pytest.fixture
def probe_installed(monkeypatch):
    """prime-plugin-probe 0.1.0 installed: a schedule "probe" and a map "base-b" that collides with the core's."""
    from prime_core import BaseBMap

    module = types.ModuleType("prime_plugin_probe")

    class ProbeMap(BaseBMap):
        pass

    module.register_maps = hookimpl(lambda register: register("base-b", ProbeMap))
    module.register_schedules = hookimpl(lambda register: register("probe", MySchedule))
    monkeypatch.setitem(__import__("sys").modules, "prime_plugin_probe", module)
    dists = [_FakeDist("prime-plugin-probe", "0.1.0", [("probe", "prime_plugin_probe")])]
    monkeypatch.setattr(md, "entry_points",
                        lambda group=None: [ep for d in dists for ep in d.entry_points if ep.group == group])
    monkeypatch.delenv("PRIME_LOAD_PLUGINS", raising=False)
    from prime_core.plugin import default as registry_module

    registry_module.reset_registry()
    yield dists
    registry_module.reset_registry()


def test_a_plugin_colliding_with_a_builtin_is_skipped_not_fatal(probe_installed):
    reg = new_registry()
    assert reg.get("map", "base-b").distribution == "prime-core"
    assert reg.get("schedule", "probe").distribution == "prime-plugin-probe"  # its other components work
    assert "prime-plugin-probe" in reg.plugins["probe"].error and "prime-core" in reg.plugins["probe"].error


def test_prime_plugins_lists_the_broken_plugin_and_exits_1(probe_installed, capsys):
    import json

    from prime_core.cli.app import main

    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    assert "probe  (prime-plugin-probe 0.1.0)  ERROR: map 'base-b' is already registered by prime-core" in out
    assert "schedule   probe" in out
    assert main(["plugins", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["name"] == "probe" and "already registered" in rows[0]["error"]
    assert rows[0]["components"] == {"schedule": ["probe"]} and "traceback" not in rows[0]


def test_prime_debug_shows_a_failed_plugins_traceback(monkeypatch, capsys):
    dists = [_FakeDist("prime-plugin-ghost", "1.0", [("ghost", "no_such_module_xyz")])]
    monkeypatch.setattr(md, "entry_points",
                        lambda group=None: [ep for d in dists for ep in d.entry_points if ep.group == group])
    monkeypatch.delenv("PRIME_LOAD_PLUGINS", raising=False)
    from prime_core.plugin import default as registry_module
    from prime_core.cli.app import main

    registry_module.reset_registry()
    try:
        assert main(["plugins"]) == 1
        assert "Traceback" not in capsys.readouterr().out
        monkeypatch.setenv("PRIME_DEBUG", "1")
        assert main(["plugins", "--json"]) == 1
        row = __import__("json").loads(capsys.readouterr().out)[0]
        assert "ModuleNotFoundError" in row["error"] and "Traceback (most recent call last)" in row["traceback"]
        assert main(["plugins"]) == 1
        assert "Traceback (most recent call last)" in capsys.readouterr().out
    finally:
        registry_module.reset_registry()


def test_a_clean_install_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(md, "entry_points", lambda group=None: [])
    from prime_core.plugin import default as registry_module
    from prime_core.cli.app import main

    registry_module.reset_registry()
    try:
        assert main(["plugins"]) == 0
    finally:
        registry_module.reset_registry()


# ---- a checkpoint that needs a missing plugin says what to install --------------------------------------------
def test_unknown_component_names_the_distribution_the_checkpoint_records(registry, monkeypatch):
    provided = {"name": "probe-gray", "distribution": "prime-plugin-probe", "version": "0.1.0"}
    with pytest.raises(RegistryError) as info:
        registry.get("map", "probe-gray", provided_by=provided)
    assert str(info.value).startswith(
        "unknown map 'probe-gray', provided by prime-plugin-probe 0.1.0, which is not installed: "
        "pip install prime-plugin-probe==0.1.0; available: base-b")
    assert info.value.distribution == "prime-plugin-probe"
    monkeypatch.setattr(md, "version", lambda name: "0.2.0")
    with pytest.raises(RegistryError, match=r"the installed prime-plugin-probe 0.2.0 does not provide it: "
                                            r"pip install prime-plugin-probe==0.1.0"):
        registry.build("map", "probe-gray", 4, 2, provided_by=provided)


def test_metadata_that_is_not_a_plain_name_is_not_echoed(registry):
    with pytest.raises(RegistryError) as info:
        registry.get("map", "x", provided_by={"distribution": "evil; rm -rf /", "version": "1"})
    assert "rm -rf" not in str(info.value) and "pip install" not in str(info.value)


def test_load_model_names_the_missing_plugins_distribution(tmp_path, probe_installed):
    from prime_core import Config
    from prime_core.runs.build import build_model, load_model, save_model

    with_probe = new_registry()
    config = Config.from_dict({"model": {"num_classes": 4, "length": 2, "ell": 2, "width": 8,
                                         "schedule": "probe"}})
    url = save_model(str(tmp_path / "ckpt"), build_model(config, with_probe), config, registry=with_probe)
    without = new_registry(load_plugins=False)
    with pytest.raises(RegistryError, match=r"unknown schedule 'probe', provided by prime-plugin-probe 0.1.0, which "
                                            r"is not installed: pip install prime-plugin-probe==0.1.0"):
        load_model(url, without)


def test_collecting_again_reports_a_problem_once(registered):
    reg = registered(DupPlugin())
    reg.collect()
    reg.collect()
    assert reg.plugins["throwaway"].error.count("already registered") == 1


def test_a_retried_hook_reports_a_duplicate_once():
    """A raising plugin makes the registry call the hook again without it: the other plugin's duplicate is
    reported once, not once per attempt."""
    class Raises:
        @hookimpl(trylast=True)  # after the duplicate was found
        def register_schedules(self, register):
            raise RuntimeError("boom")

    reg = new_registry(load_plugins=False)
    reg.add_plugin(DupPlugin(), "dup", "dup-dist", "1")
    reg.add_plugin(Raises(), "raises", "raises-dist", "1")
    reg.collect()
    assert reg.plugins["dup"].error.count("already registered") == 1
    assert "boom" in reg.plugins["raises"].error
