"""``--set section.key=value`` overrides (and ``[[compare]]``'s ``set`` lists): parsed and applied to a config dict.
Re-exported by `prime_core.runs.config`, their former home."""

from __future__ import annotations

import json
import tomllib
from typing import Any

from ..errors import ConfigError


def parse_override(text: str) -> tuple[list[str], Any]:
    """``section.key=value`` (value in TOML syntax; a bare word is a string) → (path, value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. model.ell=4")
    path, raw = text.split("=", 1)
    keys = [k.strip() for k in path.split(".")]
    if len(keys) < 2 or not all(keys):
        raise ConfigError(f"override {text!r}: the key must name a section and a field, e.g. model.ell")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return keys, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = json.loads(json.dumps(data))  # deep copy
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {key} is not a table")
        node[keys[-1]] = value
    return data
