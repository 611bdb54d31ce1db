"""The ``prime`` command line (internal; the console script is ``prime_core.cli:main``).

``app`` builds the parser and holds the handlers; commands that plugins add come through the plugin machinery
(`prime_core.plugin.commands`). Importing this package imports no torch, so ``prime --help`` stays fast.
"""

from .app import main

__all__ = ["main"]
