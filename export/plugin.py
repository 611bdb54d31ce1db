"""Registers the exporters ("onnx", "tensorrt") and the sampler runtimes ("onnxruntime", "tensorrt") through the
``prime`` entry-point group."""

from __future__ import annotations

from prime_core import hookimpl
from prime_core.api import Exporter, Runtime


class OnnxExporter(Exporter):
    """One sampler step → ONNX, checked and compared with eager torch (see `export.onnx`); returns the path."""

    name = "onnx"

    @classmethod
    def add_arguments(cls, parser) -> None:
        from .onnx import add_arguments

        add_arguments(parser)

    def export(self, checkpoint: str, output: str, **options) -> str:
        from .onnx import export_onnx

        return export_onnx(checkpoint, output, **options)


class TensorRTExporter(Exporter):
    """One sampler step → ONNX → TensorRT engine, validated (see `export.engine.build_engine`)."""

    name = "tensorrt"

    @classmethod
    def add_arguments(cls, parser) -> None:
        from .trt import add_arguments

        add_arguments(parser)

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


@hookimpl
def register_exporters(register):
    register("onnx", OnnxExporter)
    register("tensorrt", TensorRTExporter)


@hookimpl
def register_runtimes(register):
    register("onnxruntime", OnnxRuntime)
    register("tensorrt", TensorRTRuntime)
