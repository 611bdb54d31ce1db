"""Install hints for a component that is not registered (internal): what a checkpoint says provided it, and
whether that distribution is missing, broken or too old."""

from __future__ import annotations

import importlib.metadata as md
import re
from typing import Any, Iterable, Mapping

_DIST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9.+!_-]{1,64}")


def same_distribution(a: str, b: str) -> bool:
    """Distribution names compare after PEP 503 normalisation (prime_plugin_x == prime-plugin-x)."""
    norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()  # noqa: E731
    return norm(a) == norm(b)


def install_hint(provided_by: Mapping[str, Any] | None, plugins: Iterable[Any]) -> str:
    """", provided by D V, which is not installed: pip install D==V" (or why the installed D lacks it).
    ``plugins``: the registry's `PluginInfo` rows (a broken D says why it failed). The metadata is data from a
    file: a distribution or version that is not a plain name is not shown."""
    if not isinstance(provided_by, Mapping):
        return ""
    dist, version = provided_by.get("distribution"), provided_by.get("version")
    if not (isinstance(dist, str) and _DIST_NAME.fullmatch(dist)):
        return ""
    version = version if isinstance(version, str) and _VERSION.fullmatch(version) else None
    wanted = f"{dist} {version}" if version else dist
    pin = f"{dist}=={version}" if version else dist
    broken = [i for i in plugins if same_distribution(i.distribution, dist) and i.error]
    if broken:
        return f", provided by {wanted}, which is installed but failed to load: {broken[0].error}"
    try:
        installed = md.version(dist)
    except md.PackageNotFoundError:
        return f", provided by {wanted}, which is not installed: pip install {pin}"
    return f", provided by {wanted}; the installed {dist} {installed} does not provide it: pip install {pin}"
