"""What `python -m export.onnx` and `python -m export.trt` share: the checkpoint/output/weights/force arguments
and the one-line error contract (bad input → one line on stderr, exit code 2, nothing written)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

EXIT_USAGE = 2
#: the modules of the ``prime-export[onnx]`` extra, and how to install them
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")
ONNX_EXTRA_HINT = "pip install 'prime-export[onnx]'"


def checkpoint_parser(prog: str, doc: str, output: str, output_help: str) -> argparse.ArgumentParser:
    """A parser with CHECKPOINT, -o/--output (default ``output``), --weights and --force."""
    p = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    p.add_argument("checkpoint", help="prime checkpoint (.safetensors path or fsspec URL)")
    p.add_argument("-o", "--output", default=output, help=f"{output_help} (default {output})")
    p.add_argument("--weights", default="model", choices=["model", "ema"], help="which weights to export")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    return p


def run_command(prog: str, body: Callable[[], None]) -> int:
    """Run ``body``; a user error becomes one line ``prog: error: …`` on stderr and exit code 2."""
    from prime_core.errors import PrimeError

    try:
        body()
        return 0
    except (PrimeError, ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"{prog}: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:  # an optional dependency: one line naming the extra that installs it
        missing = (exc.name or "").split(".")[0]
        if missing not in ONNX_MODULES:
            raise
        print(f"{prog}: error: {missing} is not installed: {ONNX_EXTRA_HINT}", file=sys.stderr)
        return EXIT_USAGE
