"""TensorRT: build an engine from the exported step's ONNX graph, and run it as a sampler step.

TensorRT is an optional extra (NVIDIA's ``tensorrt`` package + a CUDA GPU); it cannot be installed on the CPU
machines this project is tested on (DESIGN §4), so `require_tensorrt` turns its absence into one clear line.
The graph for TensorRT has no float64 (TensorRT has none): α, the reveal uniforms and the token draw are
float32, and the sampler loop feeds the reveal *decision* (see `export.runner`) so it stays exact. Networks are
strongly typed (TensorRT ≥ 10; 11 has no FP16 builder flag): ``--fp16`` / ``--bf16`` export the backbone's
weights in that dtype, so the ONNX graph itself is reduced-precision. TensorRT's TopK allows k ≤ 3840, so a
nucleus (top-p) sort over a vocabulary larger than that cannot be built into an engine.
The engine's metadata (the ONNX graph's ``prime.*`` properties) is written beside it as ``ENGINE.json``.
"""

from __future__ import annotations

import json
import os
import uuid

import numpy as np
import torch

from prime_core.api import PrimeError

MAX_TOPK = 3840


def cuda_available() -> bool:
    return torch.cuda.is_available()


def require_tensorrt():
    """The ``tensorrt`` module, or a one-line PrimeError saying what is missing."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise PrimeError(f"TensorRT is not available: the `tensorrt` package cannot be imported ({exc}); install "
                         f"NVIDIA TensorRT (pip install 'prime-export[tensorrt]') on a machine with a CUDA GPU") \
            from None
    if not cuda_available():
        raise PrimeError("TensorRT needs an NVIDIA GPU, and torch sees no CUDA device here")
    return trt


def onnx_input_shapes(onnx_path: str) -> dict[str, list[int | None]]:
    """Static dims of each graph input (None where the axis is dynamic)."""
    import onnx

    proto = onnx.load(onnx_path, load_external_data=False)
    return {i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input}


def profile_shapes(shapes: dict, min_batch: int, opt_batch: int, max_batch: int, length: int):
    """(min, opt, max) per input: the batch axis spans the profile, the N axis (revealing positions) spans
    1 … batch·L; a dynamic L is pinned to ``length``."""
    from .step import N_AXIS_INPUTS

    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise PrimeError(f"need 1 ≤ --min-batch ≤ --opt-batch ≤ --max-batch, got {min_batch}, {opt_batch}, "
                         f"{max_batch}")
    out = {}
    for name, dims in shapes.items():
        rest = [length if d is None else d for d in dims[1:]]
        first = (1, opt_batch * length, max_batch * length) if name in N_AXIS_INPUTS else \
            (min_batch, opt_batch, max_batch)
        out[name] = tuple(tuple([n, *rest]) for n in first)
    return out


def _write_atomic(path: str, data: bytes) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def build_engine(trt, onnx_path: str, engine_path: str, *, min_batch: int = 1, opt_batch: int = 8,
                 max_batch: int = 32, meta: dict | None = None) -> dict:
    """ONNX → serialized TensorRT engine with one optimisation profile over the batch axis. Returns the
    profile. ``trt`` is the tensorrt module (passed in, so tests can use a stand-in with the same API)."""
    from .graph import read_metadata

    meta = meta or read_metadata(onnx_path)
    profile_dims = profile_shapes(onnx_input_shapes(onnx_path), min_batch, opt_batch, max_batch, meta["length"])
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_path):
        first = str(parser.get_error(0)) if parser.num_errors else "unknown parser error"
        raise PrimeError(f"TensorRT cannot parse the step graph: {first.splitlines()[0]}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile_dims.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise PrimeError("TensorRT failed to build the engine (see its log above)")
    _write_atomic(engine_path, bytes(serialized))
    _write_atomic(engine_path + ".json", json.dumps(meta, sort_keys=True).encode())
    return profile_dims


class TensorRTStep:
    """Runs a built engine: feeds (numpy, as for ONNX Runtime) → y_s. Buffers are torch CUDA tensors."""

    def __init__(self, engine_path: str, trt=None):
        trt = trt or require_tensorrt()
        if not os.path.exists(engine_path):
            raise PrimeError(f"TensorRT engine not found: {engine_path}")
        try:
            with open(engine_path + ".json", encoding="utf-8") as fh:
                self.meta = json.load(fh)
        except (OSError, ValueError):
            raise PrimeError(f"{engine_path}.json (the engine's prime metadata) is missing or unreadable") from None
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        with open(engine_path, "rb") as fh:
            self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(fh.read())
        if self.engine is None:
            raise PrimeError(f"TensorRT cannot deserialize {engine_path} (built by another TensorRT version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        keep = []
        for name, value in feeds.items():
            tensor = torch.from_numpy(np.ascontiguousarray(value)).cuda()
            keep.append(tensor)
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        results = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch.from_numpy(np.empty(0, dtype=self.trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
            out = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, out.data_ptr())
            results.append(out)
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return [r.cpu().numpy() for r in results]

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.run(feeds)[0]


def build_from_checkpoint(checkpoint: str, output: str, *, precision: str = "fp32", min_batch: int = 1,
                          opt_batch: int = 8, max_batch: int = 32, opset: int | None = None,
                          weights: str = "model", force: bool = False, validate: bool = True,
                          trt=None, echo=print) -> dict:
    """Checkpoint → float32-noise ONNX step (weights in ``precision``) → engine at ``output``, then (validate)
    the engine against ONNX Runtime and eager torch on random masked inputs."""
    import tempfile

    from prime_core.api import load_model

    from .graph import TENSORRT_OPSET, check_opset, check_output, export_step

    opset = check_opset(opset or TENSORRT_OPSET)
    check_output(output, force)
    trt = trt or require_tensorrt()  # before any work: no GPU / no TensorRT → one line, nothing written
    weights_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    model, config, ckpt = load_model(checkpoint, weights=weights)
    with tempfile.TemporaryDirectory(prefix="prime-trt-") as tmp:
        onnx_path = os.path.join(tmp, "step.onnx")
        nucleus = model.num_classes <= MAX_TOPK
        if not nucleus:
            echo(f"note: C={model.num_classes} > {MAX_TOPK} (TensorRT's TopK limit): the engine has no nucleus "
                 f"(top-p) filtering and samples with top_p = 1 only")
        meta = export_step(model, config, onnx_path, checkpoint_meta=ckpt.meta, opset=opset,
                           noise_dtype=torch.float32, real_dtype=torch.float32, weights_dtype=weights_dtype,
                           nucleus=nucleus, backbone_name=config.model.backbone)
        profile = build_engine(trt, onnx_path, output, min_batch=min_batch, opt_batch=opt_batch,
                               max_batch=max_batch, meta=meta)
        echo(f"wrote {output} (+ {output}.json): {precision}, batch profile {min_batch}/{opt_batch}/{max_batch}")
        if validate:
            from .validate import compare, compare_onnx

            engine = TensorRTStep(output, trt)
            for p in compare(model.to(weights_dtype) if weights_dtype != torch.float32 else model, engine.run,
                             meta, batches=sorted({min_batch, max_batch}), runtime="tensorrt"):
                echo("tensorrt vs torch, " + p.line())
            try:
                for p in compare_onnx(model, onnx_path, meta, batches=(min_batch,)):
                    echo("onnxruntime vs torch (same graph), " + p.line())
            except Exception as exc:  # ORT may lack a reduced-precision kernel; the engine was compared above
                echo(f"onnxruntime could not run the {precision} graph: {str(exc).splitlines()[0][:200]}")
    return profile
