"""The exporters ("onnx", "tensorrt") and sampler runtimes ("onnxruntime", "tensorrt") of prime-export, and the
ONNX export itself (`export_onnx`). `export.plugin` registers them; ``python -m export.onnx`` / ``export.trt``
run them from the command line."""

from __future__ import annotations

from prime_core.api import Exporter, Runtime

from .arguments import add_onnx_arguments, add_tensorrt_arguments


class OnnxExporter(Exporter):
    """One sampler step → ONNX, checked and compared with eager torch (see `export.onnx`); returns the path."""

    name = "onnx"

    @classmethod
    def add_arguments(cls, parser) -> None:
        add_onnx_arguments(parser)

    def export(self, checkpoint: str, output: str, **options) -> str:
        return export_onnx(checkpoint, output, **options)


class TensorRTExporter(Exporter):
    """One sampler step → ONNX → TensorRT engine, validated (see `export.engine.build_engine`)."""

    name = "tensorrt"

    @classmethod
    def add_arguments(cls, parser) -> None:
        add_tensorrt_arguments(parser)

    def export(self, checkpoint: str, output: str, *, fp16: bool = False, bf16: bool = False, **options) -> str:
        from .engine import build_from_checkpoint

        build_from_checkpoint(checkpoint, output, precision="fp16" if fp16 else "bf16" if bf16 else "fp32",
                              **options)
        return output


class OnnxRuntime(Runtime):
    """Each step of the ancestral sampler as the exported graph under ONNX Runtime (`export.runner`)."""

    name = "onnxruntime"

    def sampler(self, model, config, checkpoint, **options):
        from .runner import runtime_sampler

        return runtime_sampler(self.name, model, config, checkpoint, **options)


class TensorRTRuntime(OnnxRuntime):
    """Each step as a TensorRT engine (``--step-model ENGINE`` from ``prime export tensorrt``)."""

    name = "tensorrt"


def export_onnx(checkpoint: str, output: str, *, weights: str = "model", force: bool = False,
                opset: int | None = None, batch: int = 5, draw_dtype: str | None = None, no_probs: bool = False,
                no_nucleus: bool = False, int8: bool = False, calibration_rows: int | None = None,
                data_option: list[str] | tuple = (), echo=print) -> str:
    """Export, check and compare (module docstring); ``echo`` gets the report lines. Returns ``output``.
    ``int8``: the fp32 graph is written beside ``output`` under a hidden name, quantized into ``output``
    (`export.quantize`), and removed; dynamic, or static with ``calibration_rows`` rows of the checkpoint's data
    set (`export.calibration`; ``data_option``: its locations, KEY=VALUE)."""
    import os

    import torch

    from prime_core.api import load_model

    from .graph import DEFAULT_OPSET, check_opset, check_output, export_step
    from .validate import compare_onnx

    opset = check_opset(opset or DEFAULT_OPSET)
    locations = _static_options(int8, calibration_rows, data_option)
    check_output(output, force)
    model, config, ckpt = load_model(checkpoint, weights=weights)
    calibration = None
    if calibration_rows:  # the data set is built (or refused) before anything is written
        from .calibration import calibration_rows as draw_rows, step_feeds

        calibration = step_feeds(model, config, draw_rows(model, config, ckpt.meta, calibration_rows,
                                                          locations=locations))
    noise = getattr(torch, draw_dtype or config.sample.draw_dtype)
    fp32 = _int8_source(output) if int8 else output
    try:
        meta = export_step(model, config, fp32, checkpoint_meta=ckpt.meta, opset=opset, batch=batch,
                           noise_dtype=noise, with_probs=not no_probs, force=force or int8, nucleus=not no_nucleus,
                           backbone_name=config.model.backbone)
        if int8:
            from .quantize import quantize_int8

            reader = None
            if calibration is not None:
                from .calibration import StepCalibrationReader

                reader = StepCalibrationReader(fp32, calibration)
            meta = quantize_int8(fp32, output, reader, calibration_rows or 0)
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


def _static_options(int8: bool, rows: int | None, data_option) -> dict:
    """Check the static-int8 flags together: ``--calibration-rows`` needs ``--int8``, ``--data-option`` needs
    ``--calibration-rows``; returns the data set's locations {KEY: VALUE}."""
    import json

    from prime_core.api import PrimeError

    if rows is not None and not int8:
        raise PrimeError("--calibration-rows calibrates static int8 quantization: add --int8")
    if data_option and rows is None:
        raise PrimeError("--data-option locates the calibration data set: add --int8 --calibration-rows N")
    locations = {}
    for text in data_option or ():
        key = text.partition("=")[0].strip()
        if "=" not in text or not key:
            raise PrimeError(f"--data-option {text!r} must look like KEY=VALUE, e.g. source=PATH")
        raw = text.partition("=")[2].strip()
        try:  # numbers and booleans as in TOML/JSON; anything else (a path) stays a string
            locations[key] = json.loads(raw)
        except ValueError:
            locations[key] = raw
    return locations


def _int8_source(output: str) -> str:
    """A hidden temporary name, beside ``output``, for the fp32 graph that --int8 quantizes into ``output``."""
    import os
    import uuid

    return os.path.join(os.path.dirname(os.path.abspath(output)),
                        f".{os.path.basename(output)}.fp32-{uuid.uuid4().hex[:8]}")
