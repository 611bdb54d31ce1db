"""The suites over every installed component (or those picked with --prime-plugin / --prime-kind):
``pytest --pyargs conformance``. Parametrised by `conformance.pytest_plugin`."""

from conformance.cases import run_case


def test_conformance(prime_case):
    run_case(prime_case)
