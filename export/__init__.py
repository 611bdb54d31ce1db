"""prime-export: one MDM-Prime sampler step compiled to ONNX (and TensorRT), and the sampler loop driven by it.

`python -m export.onnx CKPT -o step.onnx` exports and validates; `python -m export.trt CKPT -o step.engine`
builds a TensorRT engine; `prime sample CKPT --runtime onnxruntime` samples with the exported step and gives the
same tokens as the eager sampler for the same seed. Modules: `step` (the traced step), `graph` (export +
metadata), `validate` (parity with eager torch), `runner` (the sampling loop), `tensorrt` (engine build).
"""
