"""Registers the exporters ("onnx", "tensorrt") through the ``prime`` entry-point group."""

from __future__ import annotations

from prime_core import hookimpl
from prime_core.api import Exporter


class OnnxExporter(Exporter):
    """One sampler step → ONNX (see `export.graph.export_step`); returns the output path."""

    name = "onnx"

    def export(self, checkpoint: str, output: str, **options) -> str:
        from prime_core.api import load_model

        from .graph import export_step

        model, config, ckpt = load_model(checkpoint, weights=options.pop("weights", "model"))
        export_step(model, config, output, checkpoint_meta=ckpt.meta, backbone_name=config.model.backbone,
                    **options)
        return output


class TensorRTExporter(Exporter):
    """One sampler step → ONNX → TensorRT engine (see `export.tensorrt.build_engine`)."""

    name = "tensorrt"

    def export(self, checkpoint: str, output: str, **options) -> str:
        from .tensorrt import build_from_checkpoint

        build_from_checkpoint(checkpoint, output, **options)
        return output


@hookimpl
def register_exporters(register):
    register("onnx", OnnxExporter)
    register("tensorrt", TensorRTExporter)
