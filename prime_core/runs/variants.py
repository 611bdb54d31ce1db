"""Compared variants of a run config: the ``[[compare]]`` table array of ``prime run`` (docs/cli.md).

Each entry names a model and the ``--set``-style overrides that make it from the main config, e.g. ::

    [[compare]]
    name = "ar"
    set = ['model.backbone="dit-ar"', "model.ell=1", 'train.loss="ar-nll"', 'sample.sampler="ar"']

A variant is the main config (after the command line's ``--set``) with its own overrides applied, validated when
the config is loaded like every other key: an unknown key in an entry, an override that is not
``section.key=value`` or gives an invalid config, a duplicate name or a name that is not a safe folder name is one
`ConfigError` line. A comparison holds the data and the training budget fixed (the table compares models, not
budgets), so an override of ``data.*``, the sizes C and L, ``train.steps`` or ``train.batch_size`` is refused.
"""

from __future__ import annotations

import re

import attrs

from ..errors import ConfigError
from .overrides import apply_overrides, parse_override

#: a variant's folder name under DIR/compare/: letters, digits, ".", "_", "-", not starting with "." or "-"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ENTRY_KEYS = ("name", "set")
#: keys a variant may not override: the comparison trains every model on the same data with the same budget
FIXED_KEYS = ("model.num_classes", "model.length", "train.steps", "train.batch_size")
FIXED_SECTIONS = ("data", "compare")


@attrs.frozen
class Variant:
    """One compared model: its ``name`` (its folder DIR/compare/<name>/) and its overrides, as for ``--set``."""

    name: str
    set: tuple[str, ...] = ()


def parse_variants(entries) -> tuple[Variant, ...]:
    """``[[compare]]`` entries (a list of tables; a tuple of `Variant` passes through) → variants, checked one by
    one: keys, name, overrides' form; duplicate names (case-insensitively: "B4" and "b4" are one folder on a
    case-insensitive disk) are refused."""
    if isinstance(entries, tuple) and all(isinstance(e, Variant) for e in entries):
        return entries
    if not isinstance(entries, (list, tuple)):
        raise ConfigError(f"[[compare]] must be an array of tables (name = \"…\", set = [\"section.key=value\", …]), "
                          f"got {entries!r}"[:200])
    variants, seen = [], {}
    for i, entry in enumerate(entries):
        variant = _parse_entry(i, entry)
        key = variant.name.lower()
        if key in seen:
            raise ConfigError(f"[[compare]] entries {seen[key] + 1} and {i + 1} have the same name "
                              f"{variant.name!r}; each variant needs its own name (its folder compare/<name>/)")
        seen[key] = i
        variants.append(variant)
    return tuple(variants)


def _parse_entry(i: int, entry) -> Variant:
    where = f"[[compare]] entry {i + 1}"
    if isinstance(entry, Variant):
        entry = {"name": entry.name, "set": list(entry.set)}
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table with keys {', '.join(ENTRY_KEYS)}, got {entry!r}"[:200])
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {where}; allowed: {', '.join(ENTRY_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ConfigError(f"{where}: name must be a folder name of 1–64 letters, digits, '.', '_' or '-' that "
                          f"starts with a letter or digit (it becomes compare/<name>/), got {name!r}"[:200])
    overrides = entry.get("set", [])
    if not isinstance(overrides, list) or not all(isinstance(s, str) for s in overrides):
        raise ConfigError(f"[[compare]] {name!r}: set must be a list of \"section.key=value\" strings, "
                          f"got {overrides!r}"[:200])
    for text in overrides:
        _check_override(name, text)
    return Variant(name=name, set=tuple(overrides))


def _check_override(name: str, text: str) -> None:
    """An override's form (`parse_override`) and that it leaves the data and the budget alone."""
    try:
        keys, _ = parse_override(text)
    except ConfigError as exc:
        raise ConfigError(f"[[compare]] {name!r}: {exc}") from None
    dotted = ".".join(keys[:2])
    if keys[0] in FIXED_SECTIONS or dotted in FIXED_KEYS:
        raise ConfigError(f"[[compare]] {name!r}: override {text!r} changes {dotted}; a compared model keeps the "
                          f"main model's data and budget ([data], {', '.join(FIXED_KEYS)}): set those for all "
                          f"models with --set")


def variant_dict(base: dict, variant: Variant) -> dict:
    """The config dict of ``variant``: ``base`` (a config dict without its comparison) with the overrides."""
    return apply_overrides({k: v for k, v in base.items() if k != "compare"}, list(variant.set))
