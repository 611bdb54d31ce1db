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


def quantize_int8(src: str, dst: str) -> dict:
    """Write the fp32 step at ``src`` to ``dst`` with int8 MatMul / Gemm weights (atomically: ``dst`` appears
    whole or not at all); returns the step metadata."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .graph import read_metadata

    meta = read_metadata(src)
    parent = os.path.dirname(os.path.abspath(dst))
    tmp = os.path.join(parent, f".{os.path.basename(dst)}.int8-{uuid.uuid4().hex[:8]}")
    try:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # its "consider pre-processing" advice is not addressed to our user
        try:
            quantize_dynamic(src, tmp, op_types_to_quantize=OP_TYPES, per_channel=True,
                             weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        proto = onnx.load(tmp)
        step = dict(meta["step"], weights_dtype="int8", quantization=QUANTIZATION)
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
