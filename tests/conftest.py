"""Shared fixtures: tiny random models for exact checks, a throwaway-plugin fixture, hypothesis profiles."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from prime_test_models import make_model
from prime_core.plugin.default import new_registry

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def registry():
    """Core built-ins only, so tests do not depend on what else is installed."""
    return new_registry(load_plugins=False)


@pytest.fixture
def tiny_model(registry):
    def factory(**kw):
        return make_model(registry, **kw)
    return factory


@pytest.fixture
def registered(registry):
    """Register a throwaway plugin object on a fresh registry; unregistered afterwards."""
    added = []
    reg = new_registry(load_plugins=False)

    def add(plugin, name="throwaway", distribution="throwaway-dist", version="0.0"):
        reg.add_plugin(plugin, name, distribution, version)
        added.append(name)
        reg.collect()
        return reg

    try:
        yield add
    finally:
        for name in added:
            reg.remove_plugin(name)
