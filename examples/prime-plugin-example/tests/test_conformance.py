"""This plugin's conformance: the prime suites, run on our components only (how a plugin author tests).

Expected failures would be declared here, each with its reason, e.g.
``expected_failures={"check_alpha_prime_matches_finite_differences": "α′ is approximated"}``. We declare none.
"""

from conformance import parametrize_with_checks, run_case


@parametrize_with_checks(plugins=["example"])
def test_example_plugin_conforms(case):
    run_case(case)
