"""The component registry: loads plugins from the ``prime`` entry-point group and collects what they register.

Entry points are loaded one at a time, so a plugin that fails to import is recorded with its error and skipped
instead of breaking discovery for everyone. Names are unique per kind: a second registration of a name raises
`RegistryError` naming both distributions. ``PRIME_LOAD_PLUGINS`` (comma-separated entry-point names, empty for
none) restricts which plugins are loaded; the core's built-ins are always registered.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from typing import Any, Iterable

import attrs
import pluggy

from . import hookspecs
from . import interfaces as itf
from .errors import RegistryError

ENTRY_POINT_GROUP = "prime"
CORE_DISTRIBUTION = "prime-core"

#: kind → (hook name, interface every registered class must subclass)
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
}


@attrs.frozen
class Component:
    kind: str
    name: str
    obj: type
    plugin: str
    distribution: str
    version: str


@attrs.define
class PluginInfo:
    name: str
    distribution: str
    version: str
    builtin: bool = False
    error: str | None = None
    hooks: list[str] = attrs.field(factory=list)
    components: dict[str, list[str]] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._collected = False

    # discovery --------------------------------------------------------------------------------------------
    def add_plugin(self, plugin: object, name: str, distribution: str, version: str, builtin: bool = False) -> None:
        """Register a plugin object (module or instance with @hookimpl functions)."""
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()  # a misspelled hook name is an error, not a silent no-op
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name) if self.pm.has_plugin(name) else None
            self.plugins[name] = PluginInfo(name, distribution, version, builtin, error=f"invalid plugin: {exc}")
            return
        hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self.plugins[name] = PluginInfo(name, distribution, version, builtin, hooks=hooks)
        self._collected = False

    def remove_plugin(self, name: str) -> None:
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._collected = False

    def load_entry_points(self, only: Iterable[str] | None = None) -> None:
        seen: dict[str, str] = {}
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if only is not None and ep.name not in only:
                continue
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if ep.name in seen:  # pluggy would silently skip the second: refuse loudly instead
                self.plugins[f"{ep.name} ({dist})"] = PluginInfo(
                    ep.name, dist, version,
                    error=f"entry-point name {ep.name!r} is also used by {seen[ep.name]}; skipped")
                continue
            seen[ep.name] = dist
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not break the CLI
                self.plugins[ep.name] = PluginInfo(ep.name, dist, version,
                                                   error=f"{type(exc).__name__}: {exc}".splitlines()[0])
                continue
            self.add_plugin(plugin, ep.name, dist, version)

    # collection -------------------------------------------------------------------------------------------
    def collect(self) -> None:
        """Call every register_* hook, built-ins first then plugins in discovery order."""
        self.components = {kind: {} for kind in KINDS}
        order = list(self.plugins)
        for info in self.plugins.values():
            info.components = {}
        for kind, (hook_name, _) in KINDS.items():
            impls = {impl.plugin_name: impl for impl in getattr(self.pm.hook, hook_name).get_hookimpls()}
            for plugin_name in order:
                impl = impls.get(plugin_name)
                if impl is None or self.plugins[plugin_name].error:
                    continue
                info = self.plugins[plugin_name]
                try:
                    impl.function(register=self._register_callback(kind, info))
                except RegistryError:
                    raise
                except Exception as exc:
                    info.error = f"{hook_name} failed: {type(exc).__name__}: {exc}"
        self._collected = True

    def _register_callback(self, kind: str, info: PluginInfo):
        interface = KINDS[kind][1]

        def register(name: str, component: type) -> None:
            if not isinstance(component, type) or not issubclass(component, interface):
                raise TypeError(f"{info.distribution}: {kind} {name!r} must be a subclass of "
                                f"{interface.__name__}, got {component!r}")
            existing = self.components[kind].get(name)
            if existing is not None:
                raise RegistryError(
                    f"{kind} {name!r} is registered twice: by {existing.distribution} ({existing.plugin}) and by "
                    f"{info.distribution} ({info.name}); uninstall one or rename it",
                    kind=kind, name=name, distribution=info.distribution)
            self.components[kind][name] = Component(kind, name, component, info.name, info.distribution,
                                                    info.version)
            info.components.setdefault(kind, []).append(name)

        return register

    # lookup -----------------------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        self._ensure()
        return sorted(self.components[kind])

    def get(self, kind: str, name: str) -> Component:
        self._ensure()
        if kind not in KINDS:
            raise RegistryError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        try:
            return self.components[kind][name]
        except KeyError:
            from .distributions import distribution_hint

            available = ", ".join(sorted(self.components[kind])) or "none installed"
            hint = distribution_hint(kind, name)
            raise RegistryError(f"unknown {kind} {name!r}" + (f"; {hint}" if hint else "")
                                + f"; available: {available}", kind=kind, name=name) from None

    def build(self, kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
        """Instantiate a registered component; bad options become a one-line RegistryError."""
        component = self.get(kind, name)
        try:
            return component.obj(*args, **kwargs)
        except TypeError as exc:
            raise RegistryError(f"bad options for {kind} {name!r}: {exc}", kind=kind, name=name,
                                distribution=component.distribution) from None
        except ValueError as exc:
            raise RegistryError(f"{kind} {name!r}: {exc}", kind=kind, name=name,
                                distribution=component.distribution) from None

    def _ensure(self) -> None:
        if not self._collected:
            self.collect()


def _core_version() -> str:
    from .__about__ import __version__

    return __version__


def new_registry(load_plugins: bool = True) -> Registry:
    """A registry with the core built-ins and (unless told not to) installed plugins."""
    from . import builtin

    reg = Registry()
    reg.add_plugin(builtin, "prime-core", CORE_DISTRIBUTION, _core_version(), builtin=True)
    env = os.environ.get("PRIME_LOAD_PLUGINS")
    if load_plugins:
        only = None if env is None else {n.strip() for n in env.split(",") if n.strip()}
        reg.load_entry_points(only)
    reg.collect()
    return reg


_DEFAULT: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = new_registry()
    return _DEFAULT


def reset_registry() -> None:
    global _DEFAULT
    _DEFAULT = None
