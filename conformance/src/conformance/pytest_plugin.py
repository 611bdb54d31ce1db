"""The pytest plugin (entry point ``pytest11``): options to pick the components and declare expected failures,
and the parametrisation of ``conformance/test_installed.py`` over them. Loaded in every pytest session where
prime-conformance is installed, so it imports nothing heavy until a test asks for ``prime_case``."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("prime-conformance", "prime conformance suites")
    group.addoption("--prime-plugin", action="append", default=[], metavar="NAME",
                    help="run the suites on this plugin's components only (entry-point or distribution name; "
                         "repeatable). Default: every installed component, built-ins included.")
    group.addoption("--prime-kind", action="append", default=[], metavar="KIND",
                    help="only components of this kind (map, schedule, head, metric, sampler, backbone)")
    group.addoption("--prime-xfail", action="append", default=[], metavar="CHECK=REASON",
                    help="declare an expected failure: CHECK is a check name, name:check, kind:name:check or kind:name")
    parser.addini("prime_xfail", type="linelist", default=[],
                  help="expected failures, one 'CHECK = REASON' per line (same keys as --prime-xfail)")


def parse_expected_failures(entries) -> dict[str, str]:
    """["check_x = why", "kind:name:check_y=why"] → {key: reason}; a reason is required."""
    out = {}
    for entry in entries:
        key, sep, reason = entry.partition("=")
        if not sep or not key.strip() or not reason.strip():
            raise pytest.UsageError(f"expected failure {entry!r} must look like CHECK=REASON (a reason is required)")
        out[key.strip()] = reason.strip()
    return out


def pytest_configure(config):
    config._prime_expected_failures = expected = parse_expected_failures(
        list(config.getini("prime_xfail")) + config.getoption("prime_xfail"))
    if expected:  # a misspelled key would declare nothing: refuse it (this imports the suites, so only then)
        from .cases import validate_expected_failures

        try:
            validate_expected_failures(expected)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc):
    if "prime_case" not in metafunc.fixturenames:
        return
    from .cases import _xfail_marks, iter_cases

    config = metafunc.config
    expected = config._prime_expected_failures
    try:
        cases = iter_cases(plugins=config.getoption("prime_plugin") or None,
                           kinds=config.getoption("prime_kind") or None)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    metafunc.parametrize("prime_case", [pytest.param(c, id=c.id, marks=_xfail_marks(c, expected)) for c in cases])
