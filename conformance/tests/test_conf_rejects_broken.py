"""The suites themselves: each deliberately broken component is rejected by the check for the rule it breaks,
with a message naming the component, its distribution and the check; the built-ins pass the same checks."""

import pytest
from broken_plugin import BROKEN

from conformance import ConformanceError, SkipCheck, check_component, iter_cases
from conformance.cases import Case
from prime_core.plugin.registry import PluginInfo


def _case(registry, kind, name, check) -> Case:
    found = [c for c in iter_cases(registry, kinds=[kind]) if c.name == name and c.check.name == check]
    assert len(found) == 1, f"no case {kind}:{name}:{check}"
    return found[0]


@pytest.mark.parametrize("kind,name,check", BROKEN, ids=[f"{k}:{n}" for k, n, _ in BROKEN])
def test_broken_component_is_rejected(broken_registry, kind, name, check):
    with pytest.raises(ConformanceError) as info:
        _case(broken_registry, kind, name, check).run()
    err, msg = info.value, str(info.value)
    assert (err.kind, err.name, err.distribution, err.check) == (kind, name, "prime-broken-fixtures", check)
    assert f"{kind} {name!r} from prime-broken-fixtures 0.0 failed {check}: " in msg
    assert err.counterexample, "a failure must show the (minimal) input that breaks the rule"
    assert "minimal counterexample: " in msg


def test_shrunk_counterexample_for_non_monotone_schedule(broken_registry):
    """Hypothesis shrinks the monotonicity violation to a pair (t₁, t₂) where α really rises."""
    import broken_plugin
    import torch

    with pytest.raises(ConformanceError) as info:
        _case(broken_registry, "schedule", "wobbly", "check_strictly_decreasing").run()
    t1, t2 = (float(v) for v in info.value.counterexample.strip("()").split(","))
    s = broken_plugin.WobblySchedule()
    a = s.alpha(torch.tensor([t1, t2], dtype=torch.float64))
    assert t1 < t2 and float(a[0]) <= float(a[1])


@pytest.mark.parametrize("kind,name,check", sorted({
    ("schedule", "linear", "check_strictly_decreasing"),
    ("schedule", "cosine", "check_alpha_prime_matches_finite_differences"),
    ("map", "base-b", "check_round_trip_all_tokens"),
    ("map", "base-b", "check_invalid_codes_flagged"),
    ("head", "carry-over", "check_zero_mass_outside_consistent_tokens"),
    ("metric", "nelbo", "check_bound_ge_exact_nll"),
    ("sampler", "ancestral", "check_observed_subtokens_never_change"),
    ("sampler", "remdm", "check_observed_subtokens_never_change"),
    ("sampler", "confidence", "check_observed_subtokens_never_change"),
    ("backbone", "mlp", "check_batch_invariance"),
    ("backbone", "mlp", "check_time_conditioning_switch"),
    ("backbone", "mlp", "check_positions_match_full_output"),
}))
def test_builtin_passes_the_same_check(broken_registry, kind, name, check):
    _case(broken_registry, kind, name, check).run()


def test_joint_loss_is_not_checked_as_a_bound(broken_registry):
    """The core's joint loss declares is_bound=False, so the bound check does not apply to it."""
    with pytest.raises(SkipCheck):
        _case(broken_registry, "metric", "joint-loss", "check_bound_ge_exact_nll").run()


def test_plugin_that_fails_to_load_is_a_failure(broken_registry):
    broken_registry.plugins["ghost"] = PluginInfo("ghost", "prime-ghost", "1.0",
                                                  error="ModuleNotFoundError: No module named 'ghost'")
    try:
        cases = [c for c in iter_cases(broken_registry, plugins=["prime-ghost"])]
        assert [c.id for c in cases] == ["plugin:ghost:check_plugin_loads"]
        with pytest.raises(ConformanceError, match=r"plugin 'ghost' from prime-ghost 1.0 failed check_plugin_loads: "
                                                   r"the plugin failed to load: ModuleNotFoundError"):
            cases[0].run()
    finally:
        del broken_registry.plugins["ghost"]


def test_unknown_plugin_name_is_a_clear_error(broken_registry):
    with pytest.raises(ValueError, match="no prime plugin named nope; installed: .*broken"):
        iter_cases(broken_registry, plugins=["nope"])


def test_check_component_without_pytest(broken_registry):
    results = check_component("schedule", "wobbly", broken_registry, expected_failures={
        "check_strictly_decreasing": "non-monotone on purpose",
        "check_weights_finite": "w < 0 where α rises",
    })
    assert results["check_strictly_decreasing"] == "xfail: non-monotone on purpose"
    assert results["check_boundaries"] == "passed"
    with pytest.raises(ConformanceError, match="declared as an expected failure"):
        check_component("schedule", "linear", broken_registry, expected_failures={"check_boundaries": "stale"})
