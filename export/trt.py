"""``python -m export.trt CKPT -o step.engine`` (also ``prime export tensorrt``): build a TensorRT engine of one
sampler step and validate it.

Exports the step to ONNX (float32 noise, weights in --fp16/--bf16/fp32), builds an engine with one optimisation
profile over the batch axis (--min-batch/--opt-batch/--max-batch), writes ``step.engine`` and its metadata
``step.engine.json``, then compares the engine with eager torch and ONNX Runtime on random masked inputs.
Without an NVIDIA GPU or the ``tensorrt`` package it prints one line saying so and exits 2, writing nothing.
"""

from __future__ import annotations

import argparse

from prime_core.cliargs import count

from .arguments import checkpoint_parser, exporter_main


def add_arguments(p: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    p = checkpoint_parser("python -m export.trt", __doc__, "step.engine", "engine file to write")
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from .plugin import TensorRTExporter

    return exporter_main("export.trt", TensorRTExporter(), build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
