"""docs/plugins.md's Python blocks run (issue 20): the hook modules it shows register real components on a
fresh registry, and the conformance snippet collects cases for the example plugin."""

from __future__ import annotations

import pathlib
import re
import types

import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def _run(code: str) -> types.ModuleType:
    module = types.ModuleType("plugins_md_block")
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    return module


def test_the_page_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_block_runs_and_its_hooks_register(index):
    from prime_core.plugin.default import new_registry

    module = _run(BLOCKS[index])
    hooks = [n for n in vars(module) if n.startswith("register_")]
    tests = [n for n in vars(module) if n.startswith("test_")]
    assert hooks or tests, "a block that defines neither hooks nor tests shows nothing runnable"
    if not hooks:
        return
    reg = new_registry(load_plugins=False)
    reg.add_plugin(module, "docs-block", "docs-dist", "0")
    reg.collect()
    assert reg.plugins["docs-block"].error is None, reg.plugins["docs-block"].error
    if "register_commands" in hooks:
        import argparse

        sub = argparse.ArgumentParser().add_subparsers()
        reg.call_hook("register_commands", lambda info: sub, argument="commands", only={"docs-block"})
        assert "example-map" in sub.choices
    else:
        assert reg.plugins["docs-block"].components  # e.g. {"map": ["permuted-base-b"], "schedule": [...]}
