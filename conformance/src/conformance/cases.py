"""Checks, the components they apply to, and the cases that pair them (in the spirit of scikit-learn's
``parametrize_with_checks``): one suite per component kind, written once, applied to every registered component.

A check is a function ``check_<rule>(subject)`` registered for one kind with `@check(kind)`; it raises
`Failure` when the rule is broken and `SkipCheck` when the component does not declare a capability the check
needs. A `Case` is (component, check); its id is ``kind:name:check`` for ``pytest -k``.

Components may declare, as class attributes: ``conformance_options`` (constructor options small enough for
a CPU test, e.g. ``{"depth": 1}``) and, for backbones, ``conformance_spec`` (BackboneSpec fields to override,
e.g. ``{"length": 16}`` for an image backbone that needs a square number of positions).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import attrs

from .catalog import CHECKS, CheckSpec, check  # noqa: F401  (re-exported: conformance.check)
from .errors import ConformanceError, Failure, SkipCheck

#: kinds whose checks run a tiny model, so they depend on a map and a schedule (see `Subject.setups`)
END_TO_END_KINDS = ("head", "sampler", "metric")


@attrs.frozen
class Setup:
    """The sub-token map and noise schedule a head, sampler or metric check runs with (names for messages)."""

    map_name: str
    map_cls: type
    schedule_name: str
    schedule_cls: type

    def build_map(self, num_classes: int, ell: int):
        return self.map_cls(num_classes, ell, **_conformance_options(self.map_cls))

    def build_schedule(self):
        return self.schedule_cls(**_conformance_options(self.schedule_cls))

    def describe(self) -> str:
        return f"map {self.map_name!r}, schedule {self.schedule_name!r}"

    def run(self, body: Callable[[], None]) -> None:
        """Run ``body``; a `Failure` names this setup, so a plugin's map or schedule is seen to be involved."""
        try:
            body()
        except Failure as f:
            where = f"with {self.describe()}"
            raise Failure(f.reason, f"{f.counterexample}; {where}" if f.counterexample else where) from f


def _conformance_options(cls: type) -> dict[str, Any]:
    return dict(getattr(cls, "conformance_options", {}) or {})


@attrs.frozen
class Subject:
    """What a check receives: the registry entry of one component, the registry it came from, and ``context``:
    the plugin whose maps and schedules head, sampler and metric checks run with (default: the component's own
    plugin; the built-in base-b map and linear schedule when that plugin provides none)."""

    component: Any  # prime_core.plugin.registry.Component
    registry: Any
    context: str | None = None

    @property
    def cls(self) -> type:
        return self.component.obj

    @property
    def name(self) -> str:
        return self.component.name

    def options(self) -> dict[str, Any]:
        return _conformance_options(self.cls)

    def build(self, *args: Any, **kwargs: Any) -> Any:
        """Instantiate the component with its declared ``conformance_options`` (kwargs override them)."""
        return self.cls(*args, **{**self.options(), **kwargs})

    def setups(self) -> list[Setup]:
        """Every map and every schedule of the context plugin, each in at least one (map, schedule) pair:
        its own components go through the suites end to end, not only the built-ins."""
        from prime_core.api import BaseBMap, LinearSchedule

        plugin = self.context or self.component.plugin
        maps = [(c.name, c.obj) for c in self.registry.components.get("map", {}).values() if c.plugin == plugin]
        schedules = [(c.name, c.obj) for c in self.registry.components.get("schedule", {}).values()
                     if c.plugin == plugin]
        maps = maps or [("base-b", BaseBMap)]
        schedules = schedules or [("linear", LinearSchedule)]
        count = max(len(maps), len(schedules))
        return [Setup(*maps[i % len(maps)], *schedules[i % len(schedules)]) for i in range(count)]


@attrs.frozen
class Case:
    kind: str
    name: str
    distribution: str
    version: str
    check: CheckSpec
    subject: Subject | None = None
    plugin_error: str | None = None

    @property
    def id(self) -> str:
        """``kind:name:check``, or ``kind:name:check@plugin`` for a built-in run with a plugin's maps/schedules."""
        context = self.subject.context if self.subject is not None else None
        return f"{self.kind}:{self.name}:{self.check.name}" + (f"@{context}" if context else "")

    def _error(self, reason: str, counterexample: str | None = None) -> ConformanceError:
        return ConformanceError(self.kind, self.name, self.distribution, self.version, self.check.name, reason,
                                counterexample, self._under_test())

    def _under_test(self) -> str | None:
        """For a case run in another plugin's context: that plugin's maps and schedules, named first."""
        context = self.subject.context if self.subject is not None else None
        if not context or context == self.subject.component.plugin:
            return None
        info = self.subject.registry.plugins.get(context)
        where = f"{info.distribution} {info.version}" if info is not None else context
        setups = "; ".join(s.describe() for s in self.subject.setups())
        return f"{setups} from {where}" if setups else f"plugin {context!r} ({where})"

    def run(self) -> None:
        """Run the check; raise `ConformanceError` (readable, with the counterexample) or `SkipCheck`."""
        __tracebackhide__ = True  # pytest shows the ConformanceError line, not this frame
        if self.plugin_error is not None:
            raise self._error(f"the plugin failed to load: {self.plugin_error}")
        try:
            self.check.func(self.subject)
        except SkipCheck:
            raise
        except Failure as f:
            raise self._error(f.reason, f.counterexample) from None
        except Exception as exc:  # a crash is a failure too, but keep its traceback
            raise self._error(f"raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") \
                from exc


def _plugin_load_check(subject):  # placeholder body: Case.run reports plugin_error itself
    """The plugin's entry point imports and its hooks are valid."""


_PLUGIN_LOAD = CheckSpec("plugin", "check_plugin_loads", _plugin_load_check)


def _load_checks() -> None:
    from . import checks  # noqa: F401  (registers every suite)


def iter_cases(registry=None, *, plugins: Iterable[str] | None = None,
               kinds: Iterable[str] | None = None) -> list[Case]:
    """Every (component, check) pair. ``plugins``: entry-point or distribution names to restrict to (None =
    everything installed, built-ins included); ``kinds``: component kinds to restrict to."""
    _load_checks()
    if registry is None:
        from prime_core.api import get_registry

        registry = get_registry()
    registry.ensure_collected()
    wanted = None if plugins is None else set(plugins)
    if wanted is not None:
        known = {n for info in registry.plugins.values() for n in (info.name, info.distribution)}
        missing = wanted - known
        if missing:
            installed = ", ".join(sorted(f"{i.name} ({i.distribution})" for i in registry.plugins.values()))
            raise ValueError(f"no prime plugin named {', '.join(sorted(missing))}; installed: {installed}")

    def selected(plugin: str, distribution: str) -> bool:
        return wanted is None or plugin in wanted or distribution in wanted

    kinds = list(CHECKS) if kinds is None else list(kinds)
    cases: list[Case] = []
    for info in registry.plugins.values():
        if info.error and selected(info.name, info.distribution):
            cases.append(Case("plugin", info.name, info.distribution, info.version, _PLUGIN_LOAD,
                              plugin_error=info.error))
    for kind in kinds:
        for name in sorted(registry.components.get(kind, {})):
            comp = registry.components[kind][name]
            if not selected(comp.plugin, comp.distribution):
                continue
            for spec in CHECKS.get(kind, []):
                cases.append(Case(kind, name, comp.distribution, comp.version, spec, Subject(comp, registry)))
    return cases + _end_to_end_cases(registry, kinds, selected)


def _end_to_end_cases(registry, kinds: list[str], selected: Callable[[str, str], bool]) -> list[Case]:
    """The built-in heads, samplers and metrics run with the maps and schedules of every selected plugin that
    provides some (and no head/sampler/metric of the same kind of its own, which already uses them): a
    plugin's map or schedule is checked end to end — sampling, likelihood bounds — not only on its own."""
    cases = []
    for info in registry.plugins.values():
        if info.builtin or not selected(info.name, info.distribution):
            continue
        if not ({"map", "schedule"} & set(info.components)):
            continue
        for kind in (k for k in kinds if k in END_TO_END_KINDS and k not in info.components):
            for name in sorted(registry.components.get(kind, {})):
                comp = registry.components[kind][name]
                if comp.builtin:
                    cases += [Case(kind, name, comp.distribution, comp.version, spec,
                                   Subject(comp, registry, context=info.name)) for spec in CHECKS.get(kind, [])]
    return cases


def expected_failure(case: Case, expected: Mapping[str, str] | None) -> tuple[str, bool] | None:
    """(reason, strict) if ``case`` is a declared expected failure, else None. Keys: a check name
    (``check_x``), ``name:check_x`` or the case id ``kind:name:check_x`` — strict: the check must fail; or
    ``kind:name`` — every check of that component may fail (not strict: some of its checks may pass)."""
    if not expected:
        return None
    for key in (case.id, f"{case.kind}:{case.name}:{case.check.name}", f"{case.name}:{case.check.name}",
                case.check.name):
        if key in expected:
            return expected[key], True
    key = f"{case.kind}:{case.name}"
    if key in expected:
        return expected[key], False
    return None


def validate_expected_failures(expected: Mapping[str, str] | None) -> None:
    """Raise ValueError on a key that names no check or no kind (a misspelled key would silently declare
    nothing). Component names are not checked: a shared config may name components of plugins that are not
    installed everywhere."""
    _load_checks()
    checks = {spec.name for specs in CHECKS.values() for spec in specs} | {_PLUGIN_LOAD.name}
    kinds = set(CHECKS) | {"plugin"}
    for key in expected or {}:
        parts = key.split("@", 1)[0].split(":")
        if len(parts) == 1:
            ok, what = parts[0] in checks, f"no check named {parts[0]!r}"
        elif len(parts) == 2:  # name:check or kind:name
            ok = parts[1] in checks or (parts[0] in kinds and bool(parts[1]) and not parts[1].startswith("check_"))
            what = f"{parts[1]!r} is no check and {parts[0]!r} no kind"
        elif len(parts) == 3:
            kind, _, name = parts
            ok = kind in kinds and name in {s.name for s in CHECKS.get(kind, [])} | {_PLUGIN_LOAD.name}
            what = f"no {kind} check named {name!r}" if kind in kinds else f"no kind {kind!r}"
        else:
            ok, what = False, "too many ':'"
        if not ok:
            raise ValueError(f"unknown expected-failure key {key!r}: {what}; use CHECK, NAME:CHECK, KIND:NAME:CHECK "
                             f"or KIND:NAME with a check of: {', '.join(sorted(checks))}")


def _xfail_marks(case: Case, expected: Mapping[str, str] | None) -> list:
    import pytest

    declared = expected_failure(case, expected)
    if declared is None:
        return []
    reason, strict = declared
    return [pytest.mark.xfail(reason=reason, raises=ConformanceError, strict=strict)]


def parametrize_with_checks(registry=None, *, plugins: Iterable[str] | None = None,
                            kinds: Iterable[str] | None = None, expected_failures: Mapping[str, str] | None = None):
    """A ``pytest.mark.parametrize("case", …)`` over `iter_cases`, with readable ids and declared xfails::

        @parametrize_with_checks(plugins=["my-plugin"], expected_failures={"check_x": "why"})
        def test_my_plugin(case):
            run_case(case)
    """
    import pytest

    validate_expected_failures(expected_failures)
    params = [pytest.param(case, id=case.id, marks=_xfail_marks(case, expected_failures))
              for case in iter_cases(registry, plugins=plugins, kinds=kinds)]
    return pytest.mark.parametrize("case", params)


def run_case(case: Case) -> None:
    """Run a case under pytest: `SkipCheck` becomes a skip, failures raise `ConformanceError`."""
    import pytest

    __tracebackhide__ = True
    try:
        case.run()
    except SkipCheck as exc:
        pytest.skip(f"{case.id}: {exc}")


def check_component(kind: str, name: str, registry=None, *,
                    expected_failures: Mapping[str, str] | None = None) -> dict[str, str]:
    """Run every check of one component without pytest (like scikit-learn's ``check_estimator``).
    Returns check → "passed" / "skipped: …" / "xfail: …"; raises the first unexpected `ConformanceError`."""
    from prime_core.api import get_registry

    registry = registry or get_registry()
    validate_expected_failures(expected_failures)
    comp = registry.get(kind, name)
    results: dict[str, str] = {}
    for case in iter_cases(registry, plugins=[comp.plugin], kinds=[kind]):
        if case.name != name or case.subject is None or case.subject.context is not None:
            continue
        declared = expected_failure(case, expected_failures)
        reason, strict = declared if declared else (None, False)
        try:
            case.run()
        except SkipCheck as exc:
            results[case.check.name] = f"skipped: {exc}"
            continue
        except ConformanceError:
            if not reason:
                raise
            results[case.check.name] = f"xfail: {reason}"
            continue
        if strict:
            raise case._error(f"declared as an expected failure ({reason}) but it passed")
        results[case.check.name] = "passed"
    return results
