"""Optional dependencies: one line naming the extra that installs them, never a silent skip.

Extras of this repository's distributions (pyproject.toml of each) and what they enable:

=======================================  =====================================================================
``prime-core[plots]``                    matplotlib: ``loss.png`` of every training run, the toy data's ``samples.png``
``prime-core[tensorboard]``              tensorboard: ``train.tensorboard = true`` in the ``simple`` trainer
``prime-core[all]``                      every optional dependency of prime-core (``plots``, ``tensorboard``)
``prime-plugin-images[toy]``             scikit-image + matplotlib: the ``image-density-2d`` data set and its PNGs
``prime-plugin-text[lmeval]``            lm-eval 0.4.x: the lm-evaluation-harness model ``prime`` (prime_plugin_text.lmeval)
``prime-plugin-trainer[plots]``          matplotlib: the ``torch`` trainer's ``loss.png``
``prime-plugin-trainer[tensorboard]``    tensorboard: ``train.tensorboard = true`` in the ``torch`` trainer
``prime-export[onnx]``                   onnx, onnxscript, onnxruntime: ``python -m export.onnx``, ``--runtime onnxruntime``
``prime-export[tensorrt]``               TensorRT from NVIDIA (never installed in CI): ``python -m export.trt``
``prime-export[all]``                    ``onnx`` + ``tensorrt``
``prime-conformance[export]``            onnx + onnxruntime: the exporter suites' ONNX Runtime checks
=======================================  =====================================================================
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from .errors import PrimeError

_warned: set[tuple[str, str]] = set()


def install_hint(extra: str) -> str:
    return f"pip install '{extra}'"


def optional_import(module: str, extra: str, purpose: str) -> ModuleType | None:
    """``module``, or None after one warning line on stderr: "<purpose> skipped: <module> is not installed
    (pip install '<extra>')". Use it where the output is a convenience (a plot); `require` where it is the job."""
    try:
        return importlib.import_module(module)
    except ImportError:
        key = (module, purpose)
        if key not in _warned:
            _warned.add(key)
            top = module.split(".")[0]
            print(f"warning: {purpose} skipped: {top} is not installed ({install_hint(extra)})",
                  file=sys.stderr)
        return None


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``module``, or a one-line `PrimeError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise PrimeError(f"{purpose} needs {top}, which is not installed: {install_hint(extra)} ({exc})") from None


def matplotlib_pyplot(extra: str, purpose: str) -> ModuleType | None:
    """``matplotlib.pyplot`` on the Agg backend, or None after a one-line warning naming ``extra``."""
    mpl = optional_import("matplotlib", extra, purpose)
    if mpl is None:
        return None
    mpl.use("Agg")
    return importlib.import_module("matplotlib.pyplot")
