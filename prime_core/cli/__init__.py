"""The ``prime`` command line (internal; the console script is ``prime_core.cli:main``).

``app`` assembles the parser and maps errors to exit codes; each command group is one module holding its parser
registration (``add_parser(sub)``) next to its handler: ``plugins``, ``train`` (train and run), ``sample`` (with
``sample_rows``), ``evaluate``, ``idle_steps``; ``options`` defines once the options several commands share and
``debug`` puts ``--debug`` on every command. Commands that plugins add come through the plugin machinery
(`prime_core.plugin.commands`). Importing this package imports no torch, so ``prime --help`` stays fast.
"""

from .app import main

__all__ = ["main"]
