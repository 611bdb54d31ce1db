"""``python -m export.onnx CKPT -o step.onnx`` (also ``prime export onnx``): export one sampler step to ONNX,
check it, compare with torch.

Steps: load the checkpoint → export the step (DESIGN §2.5 in one graph, see `export.step`) with the dynamo
exporter → ``onnx.checker`` → run under ONNX Runtime on random masked inputs at batch sizes 1 and --batch and
compare with eager torch (max |Δp| and identical sampled ids). Bad input (missing / corrupt checkpoint,
untraceable backbone, existing output without --force, unsupported opset) → one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse


from .arguments import add_onnx_arguments as add_arguments
from .arguments import checkpoint_parser, exporter_main
from .exporters import OnnxExporter, export_onnx


def build_parser() -> argparse.ArgumentParser:
    p = checkpoint_parser("python -m export.onnx", __doc__, "step.onnx", "ONNX file to write")
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    return exporter_main("export.onnx", OnnxExporter(), build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
