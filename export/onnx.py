"""``python -m export.onnx CKPT -o step.onnx``: export one sampler step to ONNX, check it, compare with torch.

Steps: load the checkpoint → export the step (DESIGN §2.5 in one graph, see `export.step`) with the dynamo
exporter → ``onnx.checker`` → run under ONNX Runtime on random masked inputs at batch sizes 1 and --batch and
compare with eager torch (max |Δp| and identical sampled ids). Bad input (missing / corrupt checkpoint,
untraceable backbone, existing output without --force, unsupported opset) → one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse

from prime_core.cliargs import count

from .command import checkpoint_parser, run_command


def build_parser() -> argparse.ArgumentParser:
    from .graph import DEFAULT_OPSET

    p = checkpoint_parser("python -m export.onnx", __doc__, "step.onnx", "ONNX file to write")
    p.add_argument("--opset", type=count("--opset", 7, 99), default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--batch", type=count("--batch", 1, 4096), default=5,
                   help="largest batch size of the parity check (default 5)")
    p.add_argument("--gumbel-dtype", choices=["float32", "float64"],
                   help="dtype of the Gumbel noise input (default: the checkpoint's sample.gumbel_dtype)")
    p.add_argument("--no-probs", action="store_true", help="export y_s only (no probabilities output)")
    p.add_argument("--no-nucleus", action="store_true",
                   help="leave the top-p sort out of the graph (faster; such a step samples with top_p = 1 only)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("export.onnx", lambda: _export(args), args)


def _export(args) -> None:
    import torch

    from prime_core.build import load_model
    from prime_core.errors import PrimeError

    from .graph import check_opset, check_output, export_step
    from .validate import compare_onnx

    check_opset(args.opset)
    check_output(args.output, args.force)
    if args.batch < 1:
        raise PrimeError(f"--batch must be ≥ 1, got {args.batch}")
    model, config, ckpt = load_model(args.checkpoint, weights=args.weights)
    noise = getattr(torch, args.gumbel_dtype or config.sample.gumbel_dtype)
    meta = export_step(model, config, args.output, checkpoint_meta=ckpt.meta, opset=args.opset,
                       batch=args.batch, noise_dtype=noise, with_probs=not args.no_probs, force=args.force,
                       nucleus=not args.no_nucleus, backbone_name=config.model.backbone)
    step = meta["step"]
    print(f"wrote {args.output}: opset {args.opset}, C={meta['num_classes']} L={meta['length']} "
          f"ℓ={meta['ell']} b={meta['base']}, dynamic batch, {'dynamic' if step['dynamic_length'] else 'static'}"
          f" length, Gumbel noise {step['noise_dtype']}; onnx.checker: ok")
    for parity in compare_onnx(model, args.output, meta, batches=sorted({1, args.batch})):
        print("onnxruntime vs torch, " + parity.line())


if __name__ == "__main__":
    raise SystemExit(main())
