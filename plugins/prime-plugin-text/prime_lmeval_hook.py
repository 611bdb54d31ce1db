"""Lets lm-eval's own CLI find prime's model: ``lm_eval --model prime --model_args checkpoint=…``.

lm-eval 0.4.x looks ``--model`` up in its model registry and loads no plugins (no entry-point group; upstream
issues EleutherAI/lm-evaluation-harness#1457 and #3282), so a model defined outside lm-eval is only found if
something registers it inside the lm-eval process. prime-plugin-text's wheel therefore installs the one-line
``prime_plugin_text_lmeval.pth`` into site-packages, which runs ``import prime_lmeval_hook`` at interpreter start.

This module imports nothing heavy and does nothing until lm-eval is used: it puts one finder on ``sys.meta_path``
that waits for ``lm_eval.api.registry`` to be imported, and right after that module has run it registers the name
``prime`` as lm-eval's own lazy placeholder ``"prime_plugin_text.lmeval:PrimeLM"``. torch and prime are imported
only when lm-eval looks ``prime`` up. ``PRIME_LMEVAL_HOOK=0`` turns it off. It never raises: a failure is one line
on stderr and lm-eval runs as if the hook were absent.
"""

from __future__ import annotations

import os
import sys

WATCHED = "lm_eval.api.registry"
NAME, TARGET = "prime", "prime_plugin_text.lmeval:PrimeLM"


def register(registry_module) -> None:
    """Register ``prime`` in a freshly imported ``lm_eval.api.registry`` (lazily where the registry can)."""
    registry = getattr(registry_module, "model_registry", None)
    if registry is not None and hasattr(registry, "register"):
        # lm-eval fills its own lazy table only when the registry is empty at the first get_model(); with "prime"
        # in it that would never happen, so fill it first (placeholders only: no torch, no transformers)
        import lm_eval.models  # noqa: F401
        if NAME not in registry:
            registry.register(NAME, target=TARGET)  # upgraded to the class when prime_plugin_text.lmeval loads
    else:  # an older 0.4 registry (a plain dict): register the class itself
        import importlib

        importlib.import_module(TARGET.partition(":")[0])


class _Finder:
    """Meta-path finder for ``lm_eval.api.registry`` only: returns the ordinary spec with ``register`` run after
    the module's own code. Removes itself on first use (one registry per process)."""

    def find_spec(self, name, path=None, target=None):
        if name != WATCHED:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # before the lookup below, which would find us again
        import importlib.util

        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module):
            original(module)
            try:
                register(module)
            except Exception as exc:  # noqa: BLE001 (lm-eval must run even if the hook is broken)
                print(f"prime: lm-eval model 'prime' not registered ({type(exc).__name__}: {exc})", file=sys.stderr)

        loader.exec_module = exec_module
        return spec


def install() -> None:
    """Put the finder first on sys.meta_path unless PRIME_LMEVAL_HOOK=0 or lm-eval's registry is already loaded."""
    if os.environ.get("PRIME_LMEVAL_HOOK", "1") == "0":
        return
    if WATCHED in sys.modules:
        register(sys.modules[WATCHED])
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


try:
    install()
except Exception:  # noqa: BLE001 (imported by a .pth at every interpreter start: must never fail)
    pass
