"""Registers the exporters ("onnx", "tensorrt") and the sampler runtimes ("onnxruntime", "tensorrt") through the
``prime`` entry-point group."""

from __future__ import annotations

from prime_core import hookimpl

from .exporters import OnnxExporter, OnnxRuntime, TensorRTExporter, TensorRTRuntime


@hookimpl
def register_exporters(register):
    register("onnx", OnnxExporter)
    register("tensorrt", TensorRTExporter)


@hookimpl
def register_runtimes(register):
    register("onnxruntime", OnnxRuntime)
    register("tensorrt", TensorRTRuntime)
