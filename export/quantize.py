"""int8 weights for an exported step (``prime export onnx CKPT -o OUT --int8``): ONNX Runtime's dynamic quantization.

The fp32 step graph (`export.graph.export_step`) is rewritten by ``onnxruntime.quantization.quantize_dynamic``:
the weights of every MatMul / Gemm become int8 (per output channel, symmetric), and at run time each such
product quantises its activations to uint8 with a scale computed from that batch (MatMulInteger / DynamicQuantize
nodes), so no calibration data is needed. Everything else — the head's restriction to V(y_t), the softmax, the
float64 inverse-CDF draw — stays as exported. The tokens therefore differ from the eager sampler's wherever
the int8 probabilities move an inverse-CDF comparison: an int8 step is a faster approximation whose sample
quality is measured (docs/benchmarks.md), not promised equal. The step's metadata says ``weights_dtype = int8``.
"""

from __future__ import annotations

import json
import logging
import os
import uuid

from prime_core import PrimeError

from .graph import META_PREFIX

OP_TYPES = ["MatMul", "Gemm"]
QUANTIZATION = "onnxruntime dynamic: int8 MatMul/Gemm weights per channel, uint8 activations per batch"
STATIC_QUANTIZATION = ("onnxruntime static (QDQ, MinMax on {rows} calibration rows of the data set): int8 "
                       "MatMul/Gemm weights per channel, uint8 activations with fixed scales")


def quantize_int8(src: str, dst: str, calibration=None, rows: int = 0) -> dict:
    """Write the fp32 step at ``src`` to ``dst`` with int8 MatMul / Gemm weights (atomically: ``dst`` appears
    whole or not at all); returns the step metadata. ``calibration``: a CalibrationDataReader
    (`export.calibration.StepCalibrationReader` over ``rows`` rows) for static quantization; None: dynamic."""
    import onnx

    from .graph import read_metadata

    meta = read_metadata(src)
    parent = os.path.dirname(os.path.abspath(dst))
    tmp = os.path.join(parent, f".{os.path.basename(dst)}.int8-{uuid.uuid4().hex[:8]}")
    try:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # its "consider pre-processing" advice is not addressed to our user
        try:
            _quantize(src, tmp, calibration)
        finally:
            root.setLevel(level)
        proto = onnx.load(tmp)
        how = QUANTIZATION if calibration is None else STATIC_QUANTIZATION.format(rows=rows)
        step = dict(meta["step"], weights_dtype="int8", quantization=how)
        del proto.metadata_props[:]
        for key, value in {**meta, "step": step}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = META_PREFIX + key, json.dumps(value, sort_keys=True)
        onnx.save_model(proto, tmp)
        os.replace(tmp, dst)
    except (onnx.checker.ValidationError, RuntimeError, ValueError) as exc:
        raise PrimeError(f"int8 quantization of the exported step failed: {str(exc).splitlines()[0]}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return read_metadata(dst)


def _quantize(src: str, dst: str, calibration) -> None:
    """ONNX Runtime's quantizer: dynamic without ``calibration``; static otherwise (QDQ format, which ORT fuses into
    integer kernels when the session is built; uint8 activations × int8 weights, the x86 pairing)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    if calibration is None:
        quantize_dynamic(src, dst, op_types_to_quantize=OP_TYPES, per_channel=True, weight_type=QuantType.QInt8)
        return
    quantize_static(src, dst, calibration, quant_format=QuantFormat.QDQ, op_types_to_quantize=OP_TYPES,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
