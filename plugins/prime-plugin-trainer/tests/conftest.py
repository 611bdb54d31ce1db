"""Fixtures for the torch trainer's tests."""

from __future__ import annotations

import pytest

from trainer_helpers import write_config


@pytest.fixture
def make_config(tmp_path):
    def make(name="config.toml", **kw):
        return write_config(tmp_path / name, **kw)
    return make
