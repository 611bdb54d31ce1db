"""``python -m export.trt CKPT -o step.engine``: build a TensorRT engine of one sampler step and validate it.

Exports the step to ONNX (float32 noise, weights in --fp16/--bf16/fp32), builds an engine with one optimisation
profile over the batch axis (--min-batch/--opt-batch/--max-batch), writes ``step.engine`` and its metadata
``step.engine.json``, then compares the engine with eager torch and ONNX Runtime on random masked inputs.
Without an NVIDIA GPU or the ``tensorrt`` package it prints one line saying so and exits 2, writing nothing.
"""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m export.trt", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="prime checkpoint (.safetensors path or fsspec URL)")
    p.add_argument("-o", "--output", default="step.engine", help="engine file to write (default step.engine)")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--fp16", action="store_true", help="float16 weights (an fp16 ONNX graph)")
    prec.add_argument("--bf16", action="store_true", help="bfloat16 weights (a bf16 ONNX graph)")
    p.add_argument("--min-batch", type=int, default=1)
    p.add_argument("--opt-batch", type=int, default=8)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--opset", type=int, help="ONNX opset of the intermediate graph")
    p.add_argument("--weights", default="model", choices=["model", "ema"])
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from prime_core.errors import PrimeError

    from .tensorrt import build_from_checkpoint

    try:
        build_from_checkpoint(args.checkpoint, args.output, precision="fp16" if args.fp16 else
                              "bf16" if args.bf16 else "fp32", min_batch=args.min_batch, opt_batch=args.opt_batch,
                              max_batch=args.max_batch, opset=args.opset, weights=args.weights, force=args.force)
        return 0
    except (PrimeError, ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"export.trt: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
