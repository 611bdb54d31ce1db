"""The component registry: collects what plugins register and looks components up by name (internal).

Jobs are split across the plugin machinery: `loading` finds and imports plugins (entry points, the built-ins),
`attribution` makes each registration name the plugin that made it, `hints` says what to install for a missing
component, `shipped_configs` and `commands` are the two hooks that are not component kinds, and `default`
assembles the process-wide registry. This module holds `Registry`: plugins in, components out.

Hooks are called through pluggy's hook caller only (`Registry.call_hook`), so ``tryfirst``, ``trylast`` and
wrappers work for every hook. Names are unique per kind: a second registration of a name is skipped, and the
plugin that made it is told so, naming both distributions (a built-in always keeps its name); the plugin's other
components and configs remain. A broken plugin (import error, invalid hook, a hook that raises) is logged as a
warning, listed with its error by ``prime plugins`` and otherwise ignored: it never breaks the tool.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

import attrs
import pluggy

from . import hookspecs
from .. import interfaces as itf
from ..errors import RegistryError, UnknownComponentError
from .attribution import AttributedPlugin, PluginFailure, Registration, first_line
from .hookspecs import CORE_DISTRIBUTION, ENTRY_POINT_GROUP

__all__ = ["CORE_DISTRIBUTION", "ENTRY_POINT_GROUP", "KINDS", "Component", "PluginInfo", "Registry"]

log = logging.getLogger("prime")

#: kind → (hook name, interface every registered class must subclass). A new kind: one row here, one hook spec.
KINDS: dict[str, tuple[str, type]] = {
    "map": ("register_maps", itf.SubTokenMap),
    "schedule": ("register_schedules", itf.NoiseSchedule),
    "backbone": ("register_backbones", itf.Backbone),
    "head": ("register_heads", itf.Parameterization),
    "sampler": ("register_samplers", itf.Sampler),
    "tokenizer": ("register_tokenizers", itf.Tokenizer),
    "dataset": ("register_datasets", itf.Dataset),
    "trainer": ("register_trainers", itf.Trainer),
    "exporter": ("register_exporters", itf.Exporter),
    "metric": ("register_metrics", itf.Metric),
    "runtime": ("register_runtimes", itf.Runtime),
}


@attrs.frozen
class Component:
    kind: str
    name: str
    obj: type
    plugin: str
    distribution: str
    version: str
    builtin: bool = False
    #: preset options: ``register("dit-small", DiT, preset="small")`` builds ``DiT(…, preset="small")`` unless
    #: the config sets ``preset`` itself (a preset is options, never a run-time subclass)
    options: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.define
class PluginInfo:
    name: str
    distribution: str
    version: str
    builtin: bool = False
    error: str | None = None
    hooks: list[str] = attrs.field(factory=list)
    components: dict[str, list[str]] = attrs.field(factory=dict)
    #: the formatted traceback of the failure in ``error``, shown with ``--debug`` / ``PRIME_DEBUG=1``
    traceback: str | None = None
    #: True when the plugin failed to load or one of its hooks raised (not for a skipped duplicate name): a
    #: broken plugin ships no configs; one whose component was skipped keeps its other components and configs
    broken: bool = False

    def to_json(self, debug: bool = False) -> dict[str, Any]:
        """The `prime plugins --json` row; the traceback only with ``debug``."""
        row = attrs.asdict(self)
        row.pop("broken")
        if not debug:
            row.pop("traceback")
        return row

    def fail(self, message: str, tb: str | None = None, broken: bool = True) -> None:
        """Record one more problem of this plugin (a plugin can break several hooks) and warn about it.
        ``broken`` False: a problem with one component only (a duplicate name), the rest of the plugin stands."""
        self.error = message if self.error is None else f"{self.error}; {message}"
        self.traceback = tb if self.traceback is None or tb is None else f"{self.traceback}\n{tb}"
        self.broken = self.broken or broken
        log.warning("warning: plugin %s (%s %s): %s", self.name, self.distribution, self.version, message)
        if tb and _debug():
            log.warning("%s", tb.rstrip())


class Registry:
    """Plugins in (`add_plugin`), components out (`get`, `build`, `names`). Constructs no component itself: the
    built-ins arrive as a plugin like any other (`prime_core.plugin.default` assembles the usual registry)."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._collected = False
        self._skipped: list[tuple[PluginInfo, str]] = []

    # plugins in -------------------------------------------------------------------------------------------
    def add_plugin(self, plugin: object, name: str, distribution: str, version: str, builtin: bool = False) -> None:
        """Register a plugin object (module or instance with @hookimpl functions); pluggy holds an
        `AttributedPlugin` proxy of it. A name already registered is a ValueError (from pluggy)."""
        info = PluginInfo(name, distribution, version, builtin)
        proxy = AttributedPlugin(plugin, name, ENTRY_POINT_GROUP)
        try:
            self.pm.register(proxy, name=name)
            self.plugins[name] = info
            self.pm.check_pending()  # a misspelled hook name is an error, not a silent no-op
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name) if self.pm.has_plugin(name) else None
            self.plugins[name] = info
            info.fail(f"invalid plugin: {exc}")
            return
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(proxy) or [])
        self._collected = False

    def record_failure(self, key: str, name: str, distribution: str, version: str, message: str,
                       tb: str | None = None) -> None:
        """A plugin that could not be added (import error, clashing entry-point name): listed, never called."""
        self.plugins[key] = PluginInfo(name, distribution, version)
        self.plugins[key].fail(message, tb)

    def remove_plugin(self, name: str) -> None:
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._collected = False

    # calling hooks ----------------------------------------------------------------------------------------
    def call_hook(self, hook_name: str, bind: Callable[[PluginInfo], Any], *, argument: str = "register",
                  only: set[str] | None = None, excluded: set[str] = frozenset()) -> None:
        """Call ``hook_name`` through pluggy's hook caller, each plugin receiving ``bind(its PluginInfo)`` as
        ``argument``. ``only``: the plugins to call (default all); ``excluded``: plugins to leave out. A plugin
        that raises surfaces as `PluginFailure` naming it."""
        skip = set(excluded) | ({n for n in self.plugins if n not in only} if only is not None else set())
        skip_objs = [self.pm.get_plugin(n) for n in skip if self.pm.has_plugin(n)]
        caller = (self.pm.subset_hook_caller(hook_name, remove_plugins=skip_objs) if skip_objs
                  else getattr(self.pm.hook, hook_name))
        caller(**{argument: Registration(lambda plugin: bind(self.plugins[plugin]))})

    # collection -------------------------------------------------------------------------------------------
    def collect(self) -> None:
        """Call every register_<kind> hook (see `_collect_kind`)."""
        self.components = {kind: {} for kind in KINDS}
        for name, info in self.plugins.items():
            info.components = {}
            if self.pm.has_plugin(name):  # forget the last collection's problems; discovery's stay (not in pm)
                info.error = info.traceback = None
                info.broken = False
        for kind in KINDS:
            self._collect_kind(kind)
        self._collected = True

    def _collect_kind(self, kind: str) -> None:
        """Call ``register_<kind>`` once, in pluggy's order: ``tryfirst`` implementations, then the others with
        the last registered first (so installed plugins before the built-ins), then ``trylast``; wrappers
        around them all. A plugin whose implementation raises is recorded as broken, and this hook is called
        again without it, so what the others registered is kept (its other hooks still count)."""
        hook_name = KINDS[kind][0]
        excluded: set[str] = set()
        while True:
            self.components[kind] = {}
            self._skipped = []  # reported once this attempt stands (not on retry)
            for info in self.plugins.values():
                info.components.pop(kind, None)
            try:
                self.call_hook(hook_name, lambda info: self._register_callback(kind, info), excluded=excluded)
                for info, message in self._skipped:
                    info.fail(message, broken=False)
                return
            except PluginFailure as failure:
                self.plugins[failure.plugin].fail(f"{hook_name} failed: {first_line(failure.exc)}", failure.tb)
                excluded.add(failure.plugin)

    def _register_callback(self, kind: str, info: PluginInfo):
        """The ``register(component)`` / ``register(name, component)`` that ``info``'s plugin receives for
        ``kind``: the name defaults to the class's ``name`` attribute, so it is stated once."""
        interface = KINDS[kind][1]

        def register(name_or_component, component: Any = None, **preset: Any) -> None:
            name, component = _name_and_component(name_or_component, component)
            if not isinstance(component, type) or not issubclass(component, interface):
                raise TypeError(f"{info.distribution}: {kind} {name!r} must be a subclass of "
                                f"{interface.__name__}, got {component!r}")
            new = Component(kind, name, component, info.name, info.distribution, info.version, info.builtin,
                            dict(preset))
            existing = self.components[kind].get(name)
            if existing is not None:
                # A built-in keeps its name whatever the call order (a plugin must not change what existing
                # configs and checkpoints mean); otherwise the first registration in call order keeps it.
                keep, drop = (new, existing) if new.builtin and not existing.builtin else (existing, new)
                self._skip(drop, keep)
                if keep is existing:
                    return
            self.components[kind][name] = new
            info.components.setdefault(kind, []).append(name)

        return register

    def _skip(self, drop: Component, keep: Component) -> None:
        """Undo ``drop`` (a duplicate of ``keep``'s name) and report it against the plugin that made it."""
        dropped = self.plugins[drop.plugin]
        names = dropped.components.get(drop.kind, [])
        if drop.name in names and self.components[drop.kind].get(drop.name) is drop:
            names.remove(drop.name)
            if not names:
                del dropped.components[drop.kind]
        self._skipped.append((dropped, f"{drop.kind} {drop.name!r} is already registered by {keep.distribution} "
                                       f"{keep.version} ({keep.plugin}); {drop.distribution}'s registration was "
                                       f"skipped: rename it or uninstall one"))

    def load_all(self) -> None:
        """Import every plugin still pending before reading `plugins` or `components` whole: nothing to do here
        (this registry holds what was added); `prime_core.plugin.lazy.LazyRegistry` loads its pending ones."""

    # components out ---------------------------------------------------------------------------------------
    def ensure_collected(self) -> None:
        """Call the register hooks if plugins were added or removed since the last `collect`."""
        if not self._collected:
            self.collect()

    def names(self, kind: str) -> list[str]:
        self.ensure_collected()
        return sorted(self.components[kind])

    def get(self, kind: str, name: str, *, provided_by: Mapping[str, Any] | None = None) -> Component:
        """The component registered as ``name``. ``provided_by``: what a checkpoint's metadata records for it
        (``{"distribution": …, "version": …}``), so that a missing one says what to install."""
        self.ensure_collected()
        if kind not in KINDS:
            raise RegistryError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        try:
            return self.components[kind][name]
        except KeyError:
            from .distributions import distribution_hint
            from .hints import install_hint

            available = ", ".join(sorted(self.components[kind])) or "none installed"
            hint = install_hint(provided_by, self.plugins.values())
            dist = provided_by.get("distribution") if hint and isinstance(provided_by, Mapping) else None
            if not hint:  # not named by a checkpoint: this repository's table of distributions (install hint)
                table = distribution_hint(kind, name)
                hint = f"; {table}" if table else ""
            raise UnknownComponentError(f"unknown {kind} {name!r}{hint}; available: {available}", kind=kind,
                                        name=name, distribution=dist) from None

    def build(self, kind: str, name: str, *args: Any, provided_by: Mapping[str, Any] | None = None,
              **kwargs: Any) -> Any:
        """Instantiate a registered component; bad options become a one-line RegistryError. ``provided_by``:
        see `get`."""
        component = self.get(kind, name, provided_by=provided_by)
        try:
            return component.obj(*args, **{**component.options, **kwargs})
        except TypeError as exc:
            raise RegistryError(f"bad options for {kind} {name!r}: {exc}", kind=kind, name=name,
                                distribution=component.distribution) from None
        except ValueError as exc:
            raise RegistryError(f"{kind} {name!r}: {exc}", kind=kind, name=name,
                                distribution=component.distribution) from None


def _name_and_component(name_or_component: Any, component: Any) -> tuple[str, Any]:
    """``register(Cls)`` takes the name from ``Cls.name``; ``register("name", Cls)`` names it explicitly (a
    preset of a class under a second name)."""
    if component is None:
        component = name_or_component
        name = getattr(component, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"register({component!r}) needs a class with a `name` attribute, or "
                            f"register(name, component)")
        return name, component
    return name_or_component, component


def _debug() -> bool:
    from ..cliargs import debug_enabled

    return debug_enabled()
