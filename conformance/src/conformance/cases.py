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

from .errors import ConformanceError, Failure, SkipCheck


@attrs.frozen
class CheckSpec:
    kind: str
    name: str
    func: Callable[["Subject"], None]

    @property
    def doc(self) -> str:
        return (self.func.__doc__ or "").strip().splitlines()[0] if self.func.__doc__ else ""


#: kind → checks, filled by the modules of `conformance.checks` at import
CHECKS: dict[str, list[CheckSpec]] = {}


def check(kind: str):
    """Register a check function for one component kind."""

    def deco(func):
        CHECKS.setdefault(kind, []).append(CheckSpec(kind, func.__name__, func))
        return func

    return deco


@attrs.frozen
class Subject:
    """What a check receives: the registry entry of one component and the registry it came from."""

    component: Any  # prime_core.registry.Component
    registry: Any

    @property
    def cls(self) -> type:
        return self.component.obj

    @property
    def name(self) -> str:
        return self.component.name

    def options(self) -> dict[str, Any]:
        return dict(getattr(self.cls, "conformance_options", {}) or {})

    def build(self, *args: Any, **kwargs: Any) -> Any:
        """Instantiate the component with its declared ``conformance_options`` (kwargs override them)."""
        return self.cls(*args, **{**self.options(), **kwargs})


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
        return f"{self.kind}:{self.name}:{self.check.name}"

    def _error(self, reason: str, counterexample: str | None = None) -> ConformanceError:
        return ConformanceError(self.kind, self.name, self.distribution, self.version, self.check.name, reason,
                                counterexample)

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
        from prime_core.registry import get_registry

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
    return cases


def expected_failure(case: Case, expected: Mapping[str, str] | None) -> tuple[str, bool] | None:
    """(reason, strict) if ``case`` is a declared expected failure, else None. Keys: a check name
    (``check_x``), ``name:check_x`` or the case id ``kind:name:check_x`` — strict: the check must fail; or
    ``kind:name`` — every check of that component may fail (not strict: some of its checks may pass)."""
    if not expected:
        return None
    for key in (case.id, f"{case.name}:{case.check.name}", case.check.name):
        if key in expected:
            return expected[key], True
    key = f"{case.kind}:{case.name}"
    if key in expected:
        return expected[key], False
    return None


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
    from prime_core.registry import get_registry

    registry = registry or get_registry()
    comp = registry.get(kind, name)
    results: dict[str, str] = {}
    for case in iter_cases(registry, plugins=[comp.plugin], kinds=[kind]):
        if case.name != name:
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
