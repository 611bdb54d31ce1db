"""Plugins use only prime-core's public API (issue 13; policy in docs/plugins.md, "Compatibility policy").

Every distribution of this repository other than prime-core is scanned (ast, its sources, not its tests): no
import of a ``_private`` name or module of prime_core, nothing from ``prime_core.builtin`` (the built-in
components, reached by name through the registry), no attribute access to a private name that prime-core
defines (e.g. ``registry._skip()``) on anything but ``self``/``cls``; and imports come only from the public
modules ``prime_core``, ``prime_core.api`` and ``prime_core.cliargs``."""

from __future__ import annotations

import ast
import pathlib

import pytest

import prime_core
import prime_core.api

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = ROOT / "prime_core"
SKIP_DIRS = {"tests", ".venv", ".tox", "build", "dist", "__pycache__"}
PUBLIC_MODULES = {"prime_core", "prime_core.api", "prime_core.cliargs"}


def _distributions() -> list[pathlib.Path]:
    """Folders of this repository's distributions other than prime-core (each has its own pyproject.toml)."""
    found = [p.parent for p in ROOT.rglob("pyproject.toml")
             if p.parent != ROOT and not SKIP_DIRS & set(p.relative_to(ROOT).parts)]
    assert len(found) >= 5, f"expected the plugins, export, conformance and the example, found {found}"
    return sorted(found)


def _sources(dist: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in dist.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(dist).parts))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _core_private_names() -> set[str]:
    """Private functions, classes, methods and class attributes that prime-core defines."""
    names = set()
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name) and _private(t.id)}
    return names


def _is_core(module: str | None) -> bool:
    return module is not None and (module == "prime_core" or module.startswith("prime_core."))


def _violations(path: pathlib.Path, core_private: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    label = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    where = lambda node: f"{label}:{node.lineno}"  # noqa: E731
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _is_core(node.module):
            parts = node.module.split(".")
            if any(_private(p) for p in parts) or parts[:2] == ["prime_core", "builtin"]:
                found.append(f"{where(node)}: from {node.module} import …")
            for alias in node.names:
                if _private(alias.name) or (node.module == "prime_core" and alias.name == "builtin"):
                    found.append(f"{where(node)}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if _is_core(alias.name) and (any(_private(p) for p in parts) or parts[:2] == ["prime_core", "builtin"]):
                    found.append(f"{where(node)}: import {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in core_private:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{where(node)}: .{node.attr} (private to prime-core)")
    return found


def test_no_distribution_imports_private_core_names():
    core_private = _core_private_names()
    assert "_skip" in core_private  # the scan knows what it looks for (Registry._skip)
    found = [v for dist in _distributions() for path in _sources(dist) for v in _violations(path, core_private)]
    assert not found, "private prime-core names used outside prime-core (use prime_core / prime_core.api):\n" + \
        "\n".join(found)


@pytest.mark.parametrize("snippet", ["from prime_core.diffusion.exact import _units", "from prime_core.builtin.mlp import M",
                                     "import prime_core.builtin.trainer", "from prime_core._x import y",
                                     "from prime_core import builtin", "registry._skip(a, b)"])
def test_the_scan_sees_each_kind_of_violation(tmp_path, snippet):
    path = tmp_path / "probe.py"
    path.write_text(snippet + "\n")
    assert _violations(path, _core_private_names())


def _module_imports(path: pathlib.Path) -> set[str]:
    """The prime_core modules ``path`` imports from."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and _is_core(node.module):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if _is_core(alias.name)}
    return found


def test_distributions_import_only_the_public_modules():
    found = sorted(f"{path.relative_to(ROOT)}: {module}" for dist in _distributions() for path in _sources(dist)
                   for module in _module_imports(path) if module not in PUBLIC_MODULES)
    assert not found, "import these through prime_core / prime_core.api instead:\n" + "\n".join(found)


def test_public_api_names_resolve_and_are_public():
    for module in (prime_core, prime_core.api):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ lists {name!r}, which it lacks"
            assert not _private(name), f"{module.__name__}.__all__ lists the private name {name!r}"
    assert prime_core.__version__ == prime_core.api.__version__ != ""
