"""``prime conformance`` / ``python -m conformance``: run the suites on one plugin (or everything) with pytest."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import sys


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    from prime_core.cliargs import Parser

    return add_arguments(parser or Parser(prog="python -m conformance"))


def add_arguments(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``prime conformance`` and ``python -m conformance``."""
    sp.add_argument("--plugin", action="append", default=[], metavar="NAME",
                    help="entry-point or distribution name (repeatable); default: every installed component")
    sp.add_argument("--kind", action="append", default=[], help="only this component kind (repeatable)")
    sp.add_argument("--xfail", action="append", default=[], metavar="CHECK=REASON",
                    help="declare an expected failure, e.g. check_weights_finite='w is infinite at t=1'")
    sp.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    sp.set_defaults(func=run)
    return sp


def pytest_argv(args) -> list[str]:
    argv = ["-p", "no:cacheprovider", "--pyargs", "conformance"]
    ours = [ep for ep in md.entry_points(group="pytest11") if ep.value == "conformance.pytest_plugin"]
    if not ours:  # running from a source tree: load the plugin explicitly
        argv = ["-p", "conformance.pytest_plugin", *argv]
    argv += [f"--prime-plugin={p}" for p in args.plugin]
    argv += [f"--prime-kind={k}" for k in args.kind]
    argv += [f"--prime-xfail={x}" for x in args.xfail]
    return argv + list(args.pytest_args)


def run(args) -> int:
    """Run pytest in a fresh interpreter, exactly as ``pytest --pyargs conformance`` would: this process has
    already imported the ``conformance`` package (to get here), and pytest, which rewrites the asserts of
    installed pytest plugins, would warn that it cannot rewrite a module imported before it started."""
    import subprocess

    return subprocess.call([sys.executable, "-m", "pytest", *pytest_argv(args)])


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
