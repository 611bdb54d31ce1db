"""The suites run a plugin's own map and schedule end to end (issue 13): heads, samplers and metrics of a plugin
are checked with its maps and schedules, and the built-in ones are checked with the maps and schedules of a
plugin that brings only those. A schedule whose weight() is wrong fails; misspelled --xfail keys are errors."""

import pytest
from broken_plugin import WrongWeightSchedule

from conformance import ConformanceError, iter_cases, validate_expected_failures
from prime_core import AncestralSampler, BaseBMap, Metric, hookimpl
from prime_core.api import LinearSchedule
from prime_core.diffusion.heads import CarryOverHead
from prime_core.plugin.default import new_registry

SEEN = []


class SpyMap(BaseBMap):
    pass


class SpySchedule(LinearSchedule):
    pass


class SpyHead(CarryOverHead):
    def log_probs(self, logits, y_t, subtoken_map):
        SEEN.append(("head", type(subtoken_map)))
        return super().log_probs(logits, y_t, subtoken_map)


class SpySampler(AncestralSampler):
    def sample(self, model, num_samples, **options):
        SEEN.append(("sampler", type(model.map), type(model.schedule)))
        return super().sample(model, num_samples, **options)


class SpyMetric(Metric):
    """Declares a bound; records the model it is given, then stops the (long) check."""

    is_bound = True

    def per_sequence(self, model, tokens, *, generator=None):
        SEEN.append(("metric", type(model.map), type(model.schedule)))
        raise RuntimeError("seen enough")


class SpyPlugin:
    @hookimpl
    def register_maps(self, register):
        register("spy-map", SpyMap)

    @hookimpl
    def register_schedules(self, register):
        register("spy-schedule", SpySchedule)

    @hookimpl
    def register_heads(self, register):
        register("spy-head", SpyHead)

    @hookimpl
    def register_samplers(self, register):
        register("spy-sampler", SpySampler)

    @hookimpl
    def register_metrics(self, register):
        register("spy-metric", SpyMetric)


class WrongWeightOnly:
    @hookimpl
    def register_schedules(self, register):
        register("wrong-weight", WrongWeightSchedule)


def _registry(plugin, name):
    reg = new_registry(load_plugins=False)
    reg.add_plugin(plugin, name, f"prime-{name}", "0.1.0")
    reg.collect()
    return reg


def _case(reg, case_id, **kw):
    found = [c for c in iter_cases(reg, **kw) if c.id == case_id]
    assert len(found) == 1, f"no case {case_id}"
    return found[0]


def test_a_plugins_head_and_sampler_run_with_its_own_map_and_schedule():
    reg = _registry(SpyPlugin(), "spy")
    SEEN.clear()
    _case(reg, "head:spy-head:check_valid_pmf", plugins=["spy"]).run()
    assert SEEN and {entry[1] for entry in SEEN} == {SpyMap}
    SEEN.clear()
    _case(reg, "sampler:spy-sampler:check_same_seed_same_samples", plugins=["spy"]).run()
    assert SEEN and set(SEEN) == {("sampler", SpyMap, SpySchedule)}
    SEEN.clear()
    with pytest.raises(ConformanceError, match="seen enough"):
        _case(reg, "metric:spy-metric:check_bound_ge_exact_nll", plugins=["spy"]).run()
    assert SEEN == [("metric", SpyMap, SpySchedule)]


def test_builtins_run_with_a_plugins_map_and_schedule():
    reg = _registry(SpyPlugin(), "spy")
    ids = {c.id for c in iter_cases(reg, plugins=["spy"])}
    # the plugin's own heads, samplers and metrics use its map and schedule: no built-in ones are added
    assert not any("@" in i for i in ids)
    reg = _registry(WrongWeightOnly(), "ww")
    ids = {c.id for c in iter_cases(reg, plugins=["ww"])}
    assert {"head:carry-over:check_valid_pmf@ww", "sampler:ancestral:check_valid_tokens_no_masks@ww",
            "metric:nelbo:check_bound_ge_exact_nll@ww"} <= ids
    assert not any(i.startswith("schedule:linear") for i in ids)


def test_wrong_weight_fails_the_weight_check():
    reg = _registry(WrongWeightOnly(), "ww")
    with pytest.raises(ConformanceError, match=r"schedule 'wrong-weight' from prime-ww 0.1.0 failed "
                                               r"check_weight_matches_alpha: w\("):
        _case(reg, "schedule:wrong-weight:check_weight_matches_alpha", plugins=["ww"]).run()


def test_a_builtin_sampler_failing_with_a_plugins_map_names_that_map():
    from broken_plugin import CollapsingMap

    class CollapsingOnly:
        @hookimpl
        def register_maps(self, register):
            register("collapsing", CollapsingMap)

    reg = _registry(CollapsingOnly(), "cm")
    with pytest.raises(ConformanceError) as info:
        _case(reg, "head:carry-over:check_zero_mass_outside_consistent_tokens@cm", plugins=["cm"]).run()
    assert "map 'collapsing'" in str(info.value)


def test_the_example_plugins_map_and_schedule_pass_end_to_end():
    reg = new_registry()
    if "permuted-base-b" not in reg.names("map"):
        pytest.skip("prime-plugin-example is not installed")
    for case_id in ("sampler:ancestral:check_observed_subtokens_never_change@example",
                    "head:carry-over:check_zero_mass_outside_consistent_tokens@example"):
        _case(reg, case_id, plugins=["example"]).run()


@pytest.mark.parametrize("key", ["nosuchcheck", "schedule:linear:check_nope", "nokind:linear:check_boundaries",
                                 "linear:check_nope", "schedule:check_nope", "a:b:c:d"])
def test_unknown_xfail_keys_are_errors(key):
    with pytest.raises(ValueError, match=f"unknown expected-failure key {key!r}"):
        validate_expected_failures({key: "why"})


@pytest.mark.parametrize("key", ["check_boundaries", "linear:check_boundaries", "schedule:linear:check_boundaries",
                                 "sampler:ar", "metric:nelbo:check_bound_ge_exact_nll@example",
                                 "plugin:ghost:check_plugin_loads"])
def test_known_xfail_keys_are_accepted(key):
    validate_expected_failures({key: "why"})
