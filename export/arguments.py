"""What `python -m export.onnx` and `python -m export.trt` share: the checkpoint/output/weights/force arguments
and the one-line error contract (bad input → one line on stderr, exit code 2, nothing written)."""

from __future__ import annotations

import argparse
from typing import Callable

from prime_core.cliargs import DRAW_DTYPES, add_renamed_option, count

#: the modules of the ``prime-export[onnx]`` extra, and how to install them
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")
ONNX_EXTRA_HINT = "pip install 'prime-export[onnx]'"


def checkpoint_parser(prog: str, doc: str, output: str, output_help: str) -> argparse.ArgumentParser:
    """A parser with CHECKPOINT, -o/--output (default ``output``), --weights and --force."""
    from prime_core.cliargs import DEBUG_HELP, Parser

    p = Parser(prog=prog, description=doc.splitlines()[0])
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return add_checkpoint_arguments(p, output, output_help)


def add_checkpoint_arguments(p: argparse.ArgumentParser, output: str, output_help: str) -> argparse.ArgumentParser:
    """CHECKPOINT, -o/--output (default ``output``), --weights and --force: what every exporter command takes."""
    p.add_argument("checkpoint", help="prime checkpoint (.safetensors path or fsspec URL)")
    p.add_argument("-o", "--output", default=output, help=f"{output_help} (default {output})")
    p.add_argument("--weights", default="model", choices=["model", "ema"], help="which weights to export")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    return p


def run_command(prog: str, body: Callable[[], None], args=None) -> int:
    """Run ``body``: bad input becomes one line ``prog: error: …`` on stderr and exit code 2 (prime_core.cliargs)."""
    from prime_core.cliargs import run_command as run

    return run(prog, lambda: _naming_the_extra(body), args)


def _naming_the_extra(body: Callable[[], None]):
    """``body()`` (an export: it returns the path it wrote, not an exit code, so success is 0); a missing module
    of the [onnx] extra becomes a one-line error naming the extra."""
    try:
        body()
        return 0
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in ONNX_MODULES:
            raise
        from prime_core import PrimeError

        raise PrimeError(f"{missing} is not installed: {ONNX_EXTRA_HINT}") from None


#: Arguments every exporter command has; the rest of the parsed arguments are the exporter's own options.
COMMON = ("checkpoint", "output", "debug", "func", "command", "exporter")


def exporter_options(args: argparse.Namespace) -> dict:
    """The keyword options `Exporter.export` gets from parsed arguments: weights, force and its own options."""
    return {k: v for k, v in vars(args).items() if k not in COMMON}


def exporter_main(prog: str, exporter, parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """``python -m export.onnx|trt``: parse ``argv`` and run ``exporter`` with the one-line error contract. A
    value refused while parsing (e.g. ``--opset 11``) is the parser's one line; its exit code is returned."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on a refused value (2, one line printed)
        return exc.code if isinstance(exc.code, int) else 2
    return run_command(prog, lambda: exporter.export(args.checkpoint, args.output, **exporter_options(args)), args)


def add_onnx_arguments(p: argparse.ArgumentParser) -> None:
    """The ONNX exporter's own options (after CHECKPOINT, -o, --weights, --force)."""
    from .graph import DEFAULT_OPSET, MIN_OPSET, parse_opset

    p.add_argument("--opset", type=parse_opset, default=DEFAULT_OPSET,
                   help=f"ONNX opset, from {MIN_OPSET} (the dynamo exporter's oldest) to the installed onnx's newest "
                        f"(default {DEFAULT_OPSET})")
    p.add_argument("--batch", type=count("--batch", 1, 4096), default=5,
                   help="largest batch size of the parity check (default 5)")
    add_renamed_option(p, "--draw-dtype", "--gumbel-dtype", choices=DRAW_DTYPES,
                       help="precision of the token draw and its uniform input (default: the checkpoint's "
                            "sample.draw_dtype)")
    p.add_argument("--no-probs", action="store_true", help="export y_s only (no probabilities output)")
    p.add_argument("--no-nucleus", action="store_true",
                   help="leave the top-p sort out of the graph (faster; such a step samples with top_p = 1 only)")
    p.add_argument("--int8", action="store_true",
                   help="int8 MatMul/Gemm weights (ONNX Runtime dynamic quantization): faster, tokens no longer "
                        "equal the eager sampler's (docs/export.md#int8)")
    p.add_argument("--calibration-rows", type=count("--calibration-rows", 1, 1 << 16), default=None, metavar="N",
                   help="with --int8: static quantization, activation scales calibrated on N rows of the "
                        "checkpoint's data set noised at random t (default: dynamic, no calibration)")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help="with --calibration-rows: a location of the checkpoint's data set (e.g. source=PATH)")


def add_tensorrt_arguments(p: argparse.ArgumentParser) -> None:
    """The TensorRT exporter's own options (after CHECKPOINT, -o, --weights, --force)."""
    from .graph import MIN_OPSET, TENSORRT_OPSET, parse_opset

    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--fp16", action="store_true", help="float16 weights (an fp16 ONNX graph)")
    prec.add_argument("--bf16", action="store_true", help="bfloat16 weights (a bf16 ONNX graph)")
    p.add_argument("--min-batch", type=count("--min-batch", 1, 1 << 20), default=1)
    p.add_argument("--opt-batch", type=count("--opt-batch", 1, 1 << 20), default=8)
    p.add_argument("--max-batch", type=count("--max-batch", 1, 1 << 20), default=32)
    p.add_argument("--opset", type=parse_opset, help=f"ONNX opset of the intermediate graph, from {MIN_OPSET} to "
                                                     f"the installed onnx's newest (default {TENSORRT_OPSET})")
