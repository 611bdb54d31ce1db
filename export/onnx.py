"""``python -m export.onnx CKPT -o step.onnx`` (also ``prime export onnx``): export one sampler step to ONNX,
check it, compare with torch.

Steps: load the checkpoint → export the step (DESIGN §2.5 in one graph, see `export.step`) with the dynamo
exporter → ``onnx.checker`` → run under ONNX Runtime on random masked inputs at batch sizes 1 and --batch and
compare with eager torch (max |Δp| and identical sampled ids). Bad input (missing / corrupt checkpoint,
untraceable backbone, existing output without --force, unsupported opset) → one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import os

from prime_core.cliargs import count

from .command import checkpoint_parser, exporter_main


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ONNX exporter's own options (after CHECKPOINT, -o, --weights, --force)."""
    from .graph import DEFAULT_OPSET, MIN_OPSET, parse_opset

    p.add_argument("--opset", type=parse_opset, default=DEFAULT_OPSET,
                   help=f"ONNX opset, from {MIN_OPSET} (the dynamo exporter's oldest) to the installed onnx's newest "
                        f"(default {DEFAULT_OPSET})")
    p.add_argument("--batch", type=count("--batch", 1, 4096), default=5,
                   help="largest batch size of the parity check (default 5)")
    p.add_argument("--gumbel-dtype", choices=["float32", "float64"],
                   help="precision of the token draw and its uniform input (default: the checkpoint's "
                        "sample.gumbel_dtype)")
    p.add_argument("--no-probs", action="store_true", help="export y_s only (no probabilities output)")
    p.add_argument("--no-nucleus", action="store_true",
                   help="leave the top-p sort out of the graph (faster; such a step samples with top_p = 1 only)")
    p.add_argument("--int8", action="store_true",
                   help="int8 MatMul/Gemm weights (ONNX Runtime dynamic quantization): faster, tokens no longer "
                        "equal the eager sampler's (docs/export.md#int8)")


def build_parser() -> argparse.ArgumentParser:
    p = checkpoint_parser("python -m export.onnx", __doc__, "step.onnx", "ONNX file to write")
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from .plugin import OnnxExporter

    return exporter_main("export.onnx", OnnxExporter(), build_parser(), argv)


def export_onnx(checkpoint: str, output: str, *, weights: str = "model", force: bool = False,
                opset: int | None = None, batch: int = 5, gumbel_dtype: str | None = None, no_probs: bool = False,
                no_nucleus: bool = False, int8: bool = False, echo=print) -> str:
    """Export, check and compare (module docstring); ``echo`` gets the report lines. Returns ``output``."""
    import torch

    from prime_core.api import load_model

    from .graph import DEFAULT_OPSET, check_opset, check_output, export_step
    from .validate import compare_onnx

    opset = check_opset(opset or DEFAULT_OPSET)
    check_output(output, force)
    model, config, ckpt = load_model(checkpoint, weights=weights)
    noise = getattr(torch, gumbel_dtype or config.sample.gumbel_dtype)
    fp32 = _int8_source(output) if int8 else output  # --int8: the fp32 graph first, beside the output
    try:
        meta = export_step(model, config, fp32, checkpoint_meta=ckpt.meta, opset=opset, batch=batch,
                           noise_dtype=noise, with_probs=not no_probs, force=force or int8, nucleus=not no_nucleus,
                           backbone_name=config.model.backbone)
        if int8:
            from .quantize import quantize_int8

            meta = quantize_int8(fp32, output)
    finally:
        if int8 and os.path.exists(fp32):
            os.remove(fp32)
    step = meta["step"]
    echo(f"wrote {output}: opset {opset}, C={meta['num_classes']} L={meta['length']} "
         f"ℓ={meta['ell']} b={meta['base']}, dynamic batch, {'dynamic' if step['dynamic_length'] else 'static'}"
         f" length, token draw in {step['noise_dtype']}, weights {step['weights_dtype']}; onnx.checker: ok")
    for parity in compare_onnx(model, output, meta, batches=sorted({1, batch})):
        echo("onnxruntime vs torch, " + parity.line())
    return output


def _int8_source(output: str) -> str:
    """A hidden temporary name for the fp32 graph that --int8 quantizes into ``output``."""
    import uuid

    return os.path.join(os.path.dirname(os.path.abspath(output)),
                        f".{os.path.basename(output)}.fp32-{uuid.uuid4().hex[:8]}")


if __name__ == "__main__":
    raise SystemExit(main())
