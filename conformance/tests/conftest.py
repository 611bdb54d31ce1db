import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # broken_plugin.py, imported by name in these tests


@pytest.fixture(scope="session")
def broken_registry():
    """A registry with the core built-ins and the broken fixture plugin only (no installed plugins)."""
    import broken_plugin
    from prime_core.plugin.default import new_registry

    reg = new_registry(load_plugins=False)
    reg.add_plugin(broken_plugin, "broken", "prime-broken-fixtures", "0.0")
    reg.collect()
    return reg
