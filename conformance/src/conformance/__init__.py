"""prime-conformance: reusable pytest + hypothesis suites that every prime component must pass.

One suite per component kind (map, schedule, head, metric, sampler, backbone; exporter parity when the export
package is installed), written once and applied to every registered component of that kind. Use it as

- ``tox -e conformance`` / ``pytest --pyargs conformance``: every installed component;
- ``pytest --pyargs conformance --prime-plugin NAME`` or ``prime conformance --plugin NAME``: one plugin;
- ``@parametrize_with_checks(plugins=["NAME"], expected_failures={...})`` in a plugin's own tests;
- ``check_component("schedule", "cosine")`` without pytest.

`conformance.strategies` holds the hypothesis strategies (sizes, C, ℓ, times, masks) for authors' own tests.
"""

from .cases import (CHECKS, Case, CheckSpec, Setup, Subject, check, check_component, expected_failure, iter_cases,
                    parametrize_with_checks, run_case, validate_expected_failures)
from .errors import ConformanceError, Failure, SkipCheck

__all__ = ["CHECKS", "Case", "CheckSpec", "ConformanceError", "Failure", "Setup", "SkipCheck", "Subject", "check",
           "check_component", "expected_failure", "iter_cases", "parametrize_with_checks", "run_case",
           "validate_expected_failures"]
