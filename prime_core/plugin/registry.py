"""The component registry: loads plugins from the ``prime`` entry-point group and collects what they register.

Entry points are loaded one at a time, so a plugin that fails to import is recorded with its error and skipped
instead of breaking discovery for everyone. Hooks are called through pluggy's hook caller, so ``tryfirst``,
``trylast`` and wrappers work, and each registration is still attributed to the plugin that made it
(`_Registration`). Names are unique per kind: a second registration of a name is skipped, and the plugin that
made it is recorded as broken with a message naming both distributions (a built-in always keeps its name).
A broken plugin (import error, invalid hook, a hook that raises, a duplicate name) is logged as a warning,
listed with its error by ``prime plugins`` and otherwise ignored: it never breaks the tool.
``PRIME_LOAD_PLUGINS`` (comma-separated entry-point names, empty for none) restricts which plugins are loaded;
the core's built-ins are always registered.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import inspect
import logging
import os
import re
import traceback
from typing import Any, Iterable, Mapping

import attrs
import pluggy

from . import hookspecs
from .. import interfaces as itf
from ..errors import RegistryError, UnknownComponentError

ENTRY_POINT_GROUP = "prime"
CORE_DISTRIBUTION = "prime-core"

log = logging.getLogger("prime")

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

    def to_json(self, debug: bool = False) -> dict[str, Any]:
        """The `prime plugins --json` row; the traceback only with ``debug``."""
        row = attrs.asdict(self)
        if not debug:
            row.pop("traceback")
        return row

    def fail(self, message: str, tb: str | None = None) -> None:
        """Record one more problem of this plugin (a plugin can break several hooks) and warn about it."""
        self.error = message if self.error is None else f"{self.error}; {message}"
        self.traceback = tb if self.traceback is None or tb is None else f"{self.traceback}\n{tb}"
        log.warning("prime: plugin %s (%s %s): %s", self.name, self.distribution, self.version, message)
        if tb and _debug():
            log.warning("%s", tb.rstrip())


def _debug() -> bool:
    from ..cliargs import debug_enabled

    return debug_enabled()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class _PluginFailure(Exception):
    """Raised out of a hook call when one plugin's implementation raised: carries who and why."""

    def __init__(self, plugin: str, exc: BaseException):
        super().__init__(plugin, exc)
        self.plugin, self.exc = plugin, exc
        self.tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class _Registration:
    """The object a ``register_<kind>`` hook call receives as ``register`` *before* attribution.

    pluggy hands every implementation the same arguments, so the registry cannot give each plugin its own
    callback through the hook caller itself. Instead each plugin is registered with pluggy through a
    `_AttributedPlugin` proxy whose functions swap this object for ``self.bound(plugin_name)`` before calling the
    plugin's code. pluggy still orders the calls (tryfirst/trylast, wrappers) and every registration is still
    attributed to the plugin, and thus the distribution, that made it."""

    def __init__(self, registry: "Registry", kind: str):
        self.registry, self.kind = registry, kind

    def bound(self, plugin: str):
        return self.registry._register_callback(self.kind, self.registry.plugins[plugin])

    def __call__(self, name: str, component: type) -> None:
        raise RegistryError(f"register({name!r}, …) was called by a plugin that was not added with "
                            f"Registry.add_plugin, so its distribution is unknown; add it with add_plugin")


def _bind(args: tuple, plugin: str) -> tuple:
    return tuple(a.bound(plugin) if isinstance(a, _Registration) else a for a in args)


def _attributed(func, plugin: str):
    """``func`` (a hook implementation) with `_Registration` arguments bound to ``plugin`` and any exception it
    raises wrapped in `_PluginFailure` naming ``plugin``. A generator function (a hook wrapper) stays one, as
    pluggy requires, and delegates with ``yield from`` so send/throw reach the plugin's generator unchanged."""
    if inspect.isgeneratorfunction(func):
        @functools.wraps(func)
        def wrapper(*args):
            try:
                return (yield from func(*_bind(args, plugin)))
            except _PluginFailure:  # another plugin's failure thrown through this wrapper by pluggy
                raise
            except Exception as exc:
                raise _PluginFailure(plugin, exc) from exc
    else:
        @functools.wraps(func)
        def wrapper(*args):
            try:
                return func(*_bind(args, plugin))
            except Exception as exc:
                raise _PluginFailure(plugin, exc) from exc
    return wrapper


class _AttributedPlugin:
    """What pluggy registers in place of a plugin object: the same hook implementations (with their
    ``@hookimpl`` options, which `functools.wraps` copies) wrapped by `_attributed`."""

    def __init__(self, plugin: object, name: str, project: str):
        self._plugin, self._names = plugin, []
        for attr in dir(plugin):
            func = getattr(plugin, attr, None)
            if callable(func) and hasattr(func, f"{project}_impl"):
                setattr(self, attr, _attributed(func, name))
                self._names.append(attr)

    def __repr__(self) -> str:
        return f"<prime plugin {self._plugin!r}>"


class Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._collected = False
        self._skipped: list[tuple[PluginInfo, str]] = []

    # discovery --------------------------------------------------------------------------------------------
    def add_plugin(self, plugin: object, name: str, distribution: str, version: str, builtin: bool = False) -> None:
        """Register a plugin object (module or instance with @hookimpl functions); pluggy holds an
        `_AttributedPlugin` proxy of it. A name already registered is a ValueError (from pluggy)."""
        info = PluginInfo(name, distribution, version, builtin)
        proxy = _AttributedPlugin(plugin, name, ENTRY_POINT_GROUP)
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

    def remove_plugin(self, name: str) -> None:
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._collected = False

    def load_entry_points(self, only: Iterable[str] | None = None) -> None:
        """Load the ``prime`` entry points one by one: one that fails to import is recorded and skipped."""
        seen: dict[str, str] = {}
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if only is not None and ep.name not in only:
                continue
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if ep.name in seen:  # pluggy would silently skip the second: refuse loudly instead
                key = f"{ep.name} ({dist})"
                self.plugins[key] = PluginInfo(ep.name, dist, version)
                self.plugins[key].fail(f"entry-point name {ep.name!r} is also used by {seen[ep.name]}; skipped")
                continue
            seen[ep.name] = dist
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not break the CLI
                self.plugins[ep.name] = PluginInfo(ep.name, dist, version)
                self.plugins[ep.name].fail(_first_line(exc), traceback.format_exc())
                continue
            self.add_plugin(plugin, ep.name, dist, version)

    # collection -------------------------------------------------------------------------------------------
    def collect(self) -> None:
        """Call every register_* hook through pluggy's hook caller (see `_collect_kind`)."""
        self.components = {kind: {} for kind in KINDS}
        for name, info in self.plugins.items():
            info.components = {}
            if self.pm.has_plugin(name):  # forget the last collection's problems; discovery's stay (not in pm)
                info.error = info.traceback = None
        for kind in KINDS:
            self._collect_kind(kind)
        self._collected = True

    def _collect_kind(self, kind: str) -> None:
        """Call ``register_<kind>`` once, in pluggy's order: ``tryfirst`` implementations, then the others with
        the last registered first (so installed plugins before the built-ins), then ``trylast``; wrappers
        around them all. A plugin whose implementation raises is recorded as broken, and this hook is called
        again without it, so what the others registered is kept (its other hooks still count)."""
        hook_name = KINDS[kind][0]
        excluded: set[str] = set()  # plugins that failed to load were never registered with pluggy
        while True:
            self.components[kind] = {}
            self._skipped: list[tuple[PluginInfo, str]] = []  # reported once this attempt stands (not on retry)
            for info in self.plugins.values():
                info.components.pop(kind, None)
            skip = [self.pm.get_plugin(name) for name in excluded]
            caller = self.pm.subset_hook_caller(hook_name, remove_plugins=skip) if skip else \
                getattr(self.pm.hook, hook_name)
            try:
                caller(register=_Registration(self, kind))
                for info, message in self._skipped:
                    info.fail(message)
                return
            except _PluginFailure as failure:
                self.plugins[failure.plugin].fail(f"{hook_name} failed: {_first_line(failure.exc)}", failure.tb)
                excluded.add(failure.plugin)

    def _register_callback(self, kind: str, info: PluginInfo):
        """The ``register(name, component)`` that ``info``'s plugin receives for ``kind``."""
        interface = KINDS[kind][1]

        def register(name: str, component: type) -> None:
            if not isinstance(component, type) or not issubclass(component, interface):
                raise TypeError(f"{info.distribution}: {kind} {name!r} must be a subclass of "
                                f"{interface.__name__}, got {component!r}")
            new = Component(kind, name, component, info.name, info.distribution, info.version, info.builtin)
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

    # lookup -----------------------------------------------------------------------------------------------
    def ensure_collected(self) -> None:
        """Call the register hooks if plugins were added or removed since the last `collect`."""
        if not self._collected:
            self.collect()

    _ensure = ensure_collected  # the name core modules used before it was public

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

            available = ", ".join(sorted(self.components[kind])) or "none installed"
            hint = self._install_hint(provided_by)
            dist = provided_by.get("distribution") if hint and isinstance(provided_by, Mapping) else None
            if not hint:  # not named by a checkpoint: this repository's table of distributions (install hint)
                table = distribution_hint(kind, name)
                hint = f"; {table}" if table else ""
            raise UnknownComponentError(f"unknown {kind} {name!r}{hint}; available: {available}", kind=kind,
                                        name=name, distribution=dist) from None

    def _install_hint(self, provided_by: Mapping[str, Any] | None) -> str:
        """", provided by D V, which is not installed: pip install D==V" (or why the installed D lacks it).
        The metadata is data from a file: a distribution or version that is not a plain name is not shown."""
        if not isinstance(provided_by, Mapping):
            return ""
        dist, version = provided_by.get("distribution"), provided_by.get("version")
        if not (isinstance(dist, str) and _DIST_NAME.fullmatch(dist)):
            return ""
        version = version if isinstance(version, str) and _VERSION.fullmatch(version) else None
        wanted = f"{dist} {version}" if version else dist
        pin = f"{dist}=={version}" if version else dist
        broken = [i for i in self.plugins.values() if _same_dist(i.distribution, dist) and i.error]
        if broken:
            return f", provided by {wanted}, which is installed but failed to load: {broken[0].error}"
        try:
            installed = md.version(dist)
        except md.PackageNotFoundError:
            return f", provided by {wanted}, which is not installed: pip install {pin}"
        return f", provided by {wanted}; the installed {dist} {installed} does not provide it: pip install {pin}"

    def build(self, kind: str, name: str, *args: Any, provided_by: Mapping[str, Any] | None = None,
              **kwargs: Any) -> Any:
        """Instantiate a registered component; bad options become a one-line RegistryError. ``provided_by``:
        see `get`."""
        component = self.get(kind, name, provided_by=provided_by)
        try:
            return component.obj(*args, **kwargs)
        except TypeError as exc:
            raise RegistryError(f"bad options for {kind} {name!r}: {exc}", kind=kind, name=name,
                                distribution=component.distribution) from None
        except ValueError as exc:
            raise RegistryError(f"{kind} {name!r}: {exc}", kind=kind, name=name,
                                distribution=component.distribution) from None


_DIST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9.+!_-]{1,64}")


def _same_dist(a: str, b: str) -> bool:
    """Distribution names compare after PEP 503 normalisation (prime_plugin_x == prime-plugin-x)."""
    norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()  # noqa: E731
    return norm(a) == norm(b)


def _core_version() -> str:
    from ..__about__ import __version__

    return __version__


def new_registry(load_plugins: bool = True) -> Registry:
    """A registry with the core built-ins and (unless told not to) installed plugins."""
    from .. import builtin

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
