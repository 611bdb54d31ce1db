"""``python -m export.trt CKPT -o step.engine`` (also ``prime export tensorrt``): build a TensorRT engine of one
sampler step and validate it.

Exports the step to ONNX (float32 noise, weights in --fp16/--bf16/fp32), builds an engine with one optimisation
profile over the batch axis (--min-batch/--opt-batch/--max-batch), writes ``step.engine`` and its metadata
``step.engine.json``, then compares the engine with eager torch and ONNX Runtime on random masked inputs.
Without an NVIDIA GPU or the ``tensorrt`` package it prints one line saying so and exits 2, writing nothing.
"""

from __future__ import annotations

import argparse


from .arguments import add_tensorrt_arguments as add_arguments
from .arguments import checkpoint_parser, exporter_main
from .exporters import TensorRTExporter


def build_parser() -> argparse.ArgumentParser:
    p = checkpoint_parser("python -m export.trt", __doc__, "step.engine", "engine file to write")
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    return exporter_main("export.trt", TensorRTExporter(), build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
