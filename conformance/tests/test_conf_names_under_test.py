"""A built-in run with a plugin's maps and schedules names that plugin's components first (issue 20): the
failure is theirs, not the built-in head's."""

from __future__ import annotations

import pytest

from prime_core import hookimpl

from conformance import ConformanceError, iter_cases
from conformance.errors import SkipCheck


class _MapOnly:
    """A plugin with one broken map and nothing else, so the built-in heads run with it."""

    @hookimpl
    def register_maps(self, register):
        import broken_plugin

        register("collapsing", broken_plugin.CollapsingMap)


def test_a_broken_map_is_named_before_the_builtin_head():
    from prime_core.plugin.default import new_registry

    plugin = _MapOnly()
    reg = new_registry(load_plugins=False)
    reg.add_plugin(plugin, "maponly", "prime-broken-fixtures", "0.0")
    reg.collect()
    cases = [c for c in iter_cases(reg, plugins=["maponly"], kinds=["head"]) if "@" in c.id]
    assert cases, "the built-in heads run in the broken plugin's context"
    for case in cases:
        try:
            case.run()
        except SkipCheck:
            continue
        except ConformanceError as err:
            message = str(err)
            assert message.startswith("map '"), message
            assert "from prime-broken-fixtures 0.0, run through head" in message.splitlines()[0]
            return
    pytest.fail("no head case failed with the broken plugin's maps")
