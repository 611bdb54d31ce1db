"""Plugin commands (issue 13): the ``register_commands`` hook, lazy ``prime.commands`` entry points, runtimes from
the registry, and a core that imports no plugin, export or conformance module."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import textwrap
import types

import pytest

from prime_core.cli import app as cli
from prime_core.plugin import commands

ROOT = pathlib.Path(__file__).resolve().parents[1]


def fake_entry_points(monkeypatch, tmp_path, modules: dict[str, str], dist="prime-plugin-probe"):
    """Install throwaway modules {module: source} and one prime.commands entry point per module, named after
    the first word of the module name after "cmd_"."""
    for name, source in modules.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [types.SimpleNamespace(name=name.removeprefix("cmd_"), value=name, group=commands.COMMANDS_GROUP,
                                 dist=types.SimpleNamespace(name=dist, version="0.1.0")) for name in modules]
    real = commands.md.entry_points
    monkeypatch.setattr(commands.md, "entry_points",
                        lambda group=None: eps if group == commands.COMMANDS_GROUP else real(group=group))
    monkeypatch.delenv("PRIME_LOAD_PLUGINS", raising=False)


HELLO = """
    from prime_core import hookimpl

    def run(args):
        print(f"hello {args.who}")
        return 0

    @hookimpl
    def register_commands(commands):
        sp = commands.add_parser("hello", help="say hello")
        sp.add_argument("who")
        sp.set_defaults(func=run)
"""


def test_a_plugin_command_runs_under_prime_and_is_listed_without_import(monkeypatch, tmp_path, capsys):
    fake_entry_points(monkeypatch, tmp_path, {"cmd_hello": HELLO})
    sys.modules.pop("cmd_hello", None)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "hello" in capsys.readouterr().out and "cmd_hello" not in sys.modules  # listed, never imported
    assert cli.main(["hello", "world"]) == 0
    assert capsys.readouterr().out.strip() == "hello world"
    assert cli.main(["hello", "world", "--debug"]) == 0  # every command takes --debug


def test_a_broken_command_is_one_line_and_breaks_nothing_else(monkeypatch, tmp_path, capsys):
    fake_entry_points(monkeypatch, tmp_path, {"cmd_hello": HELLO, "cmd_broken": "import no_such_module_xyz\n",
                                              "cmd_silent": "x = 1\n"})
    assert cli.main(["broken"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "command 'broken' of prime-plugin-probe 0.1.0 failed to load" in err[0]
    assert cli.main(["silent"]) == 2
    assert "did not add it" in capsys.readouterr().err
    assert cli.main(["hello", "you"]) == 0
    assert cli.main(["idle-steps", "--length", "2", "--ell", "1", "--steps", "2", "--json"]) == 0


def test_a_command_that_shadows_a_core_command_is_skipped_with_a_warning(monkeypatch, tmp_path, capsys):
    fake_entry_points(monkeypatch, tmp_path, {"cmd_train": HELLO})
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    captured = capsys.readouterr()
    assert "command 'train' of prime-plugin-probe ignored: prime-core already provides it" in captured.err


def test_prime_help_imports_neither_torch_nor_any_plugin():
    code = ("import sys\nfrom prime_core.cli import app as cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'export', 'conformance') "
            "or m.startswith('prime_plugin')]\nprint('IMPORTED', bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("IMPORTED []"), out


def _imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_core_imports_no_plugin_export_or_conformance_module():
    offenders = {}
    for path in (ROOT / "prime_core").rglob("*.py"):
        bad = {m for m in _imports(path)
               if m.split(".")[0] in ("export", "conformance") or m.startswith("prime_plugin")}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, offenders


def test_runtimes_come_from_the_registry(registered):
    from prime_core import hookimpl
    from prime_core.interfaces import Runtime

    class Echo(Runtime):
        def sampler(self, model, config, checkpoint, **options):
            return ("echo", checkpoint, options["step_model"])

    class Plugin:
        @hookimpl
        def register_runtimes(self, register):
            register("echo", Echo)

    reg = registered(Plugin())
    assert "echo" in reg.names("runtime")
    assert reg.build("runtime", "echo").sampler(None, None, "c.safetensors", step_model="s") == \
        ("echo", "c.safetensors", "s")
