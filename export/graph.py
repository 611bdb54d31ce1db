"""Export one sampler step (`export.step.SamplerStep`) to an ONNX file with the checkpoint's metadata.

Uses torch's dynamo exporter (``torch.onnx.export(dynamo=True)``, which needs onnxscript): it fails loudly on
Python control flow over tensor values instead of baking in one branch (DESIGN §4). The batch axis is always
dynamic; the sequence axis L is made dynamic too when the backbone allows it (an MLP over the flattened
sequence does not; the exporter then keeps L static). Weights are stored inside the one .onnx file.
The file is written atomically: nothing is left behind when export fails.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import re
import uuid
import warnings

import torch

from prime_core.api import PrimeError

from .step import INPUT_NAMES, N_AXIS_INPUTS, SamplerStep, reveal_rule, revealing_positions

MIN_OPSET = 18  # the dynamo exporter translates to opset 18 and newer only
DEFAULT_OPSET = 20  # opset 20 has Gelu: a tanh-GELU stays one kernel (ORT FastGelu), not Pow/Tanh/Mul
TENSORRT_OPSET = 18  # the TensorRT path keeps the opset its engines were validated with (no GPU to re-check here)
META_PREFIX = "prime."
DRAW = "inverse-cdf"  # how the graph draws x̂ from u_token [N]; graphs of older releases took Gumbel noise [N, C]


def max_opset() -> int:
    import onnx

    return int(onnx.defs.onnx_opset_version())


def check_opset(opset: int) -> int:
    hi = max_opset()
    if opset < MIN_OPSET:
        raise PrimeError(f"opset {opset} is too old: the dynamo exporter needs opset ≥ {MIN_OPSET} "
                         f"(allowed: {MIN_OPSET}–{hi})")
    if opset > hi:
        raise PrimeError(f"opset {opset} is newer than the installed onnx supports (allowed: {MIN_OPSET}–{hi})")
    return opset


def check_output(path: str, force: bool) -> None:
    """Before any work: ``path`` is a local file name (``memory://…`` or ``s3://…`` refused), not a folder, not
    existing unless ``force``, in a writable folder (`prime_core.api.check_output_file`)."""
    from prime_core.api import check_output_file

    check_output_file(path, "output", force)


def parse_opset(text: str) -> int:
    """``--opset``: a whole number in [MIN_OPSET, the installed onnx's newest opset] (`check_opset`), refused
    at parse time with the range; without onnx only the lower end is checked here (the export names the extra)."""
    import argparse

    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number (an ONNX opset ≥ {MIN_OPSET}), got {text!r}")
    opset = int(text)
    try:
        hi = max_opset()
    except ImportError:
        hi = None
    if opset < MIN_OPSET or hi is not None and opset > hi:
        allowed = f"{MIN_OPSET}–{hi}" if hi is not None else f"≥ {MIN_OPSET}"
        reason = "older than the dynamo exporter writes" if opset < MIN_OPSET else "newer than the installed onnx knows"
        raise argparse.ArgumentTypeError(f"opset {opset} is {reason}; allowed: {allowed}")
    return opset


parse_opset.__name__ = "--opset"


def example_inputs(model, batch: int, noise_dtype: torch.dtype = torch.float64, real_dtype=torch.float64,
                   generator: torch.Generator | None = None, mask_rate: float = 0.5, trace: bool = False) -> tuple:
    """Random masked inputs for the step: tokens drawn uniformly, each sub-token masked with prob mask_rate,
    t ~ U(0, 1), α_t < α_s, reveal uniforms, τ ∈ {1, 0.8} and top_p ∈ {1, 0.9} alternating over the batch;
    ``positions`` and u_token [N] (one draw uniform per revealing position) follow from the reveal rule. Position (0, 0) always reveals (N ≥ 1).
    trace=True (for export): rows 0 and 1 fully masked and revealed, the others not, so N = 2L differs from
    B and L and no axis gets specialised."""
    g = generator or torch.Generator().manual_seed(0)
    length, ell, c = model.length, model.ell, model.num_classes
    tokens = torch.randint(0, c, (batch, length), generator=g)
    y = model.map.digit_table("cpu")[tokens]
    y = y.masked_fill(torch.rand(y.shape, generator=g) < mask_rate, model.mask_id)
    t = torch.rand(batch, generator=g)
    a_t = (torch.rand(batch, generator=g, dtype=torch.float64) * 0.5).to(real_dtype)
    a_s = (a_t + torch.rand(batch, generator=g, dtype=torch.float64) * 0.5).to(real_dtype)
    units = 1 if model.grouped else ell
    u_reveal = torch.rand(batch, length, units, generator=g, dtype=torch.float64).to(real_dtype)
    y[0, 0], u_reveal[0, 0] = model.mask_id, 0.0
    if trace:
        y[:2], u_reveal[:2], u_reveal[2:] = model.mask_id, 0.0, 2.0
    positions = revealing_positions(reveal_rule(y, a_t, a_s, u_reveal, model.mask_id))
    u_token = torch.rand(len(positions), generator=g, dtype=noise_dtype)
    temperature = torch.tensor([1.0, 0.8])[torch.arange(batch) % 2]
    top_p = torch.tensor([1.0, 0.9])[torch.arange(batch) // 2 % 2]
    return (y, t, a_t, a_s, u_reveal, u_token, temperature, top_p, positions)


def untraceable_reason(exc: BaseException) -> str:
    """One line naming what the exporter could not trace (the operator, or the data-dependent line)."""
    text = "\n".join(str(e) for e in (exc, exc.__cause__) if e is not None)
    m = re.search(r"No ONNX function found for <OpOverload\(op='([^']+)'", text)
    if m:
        return f"operator {m.group(1)} has no ONNX translation"
    m = re.search(r"target=torch\.ops\.([\w.]+)", text)
    if m:
        return f"operator {m.group(1)} could not be translated to ONNX"
    if "data-dependent" in text:
        where = re.search(r'File "([^"]+)", line (\d+), in \w+\n\s+(.+)', text)
        at = f" at {os.path.basename(where.group(1))}:{where.group(2)}: {where.group(3).strip()}" if where else ""
        return f"data-dependent Python control flow (an `if` on a tensor value){at}"
    m = re.search(r"## Exception summary\s+(.+)", text)
    line = m.group(1) if m else (text.strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"\x1b\[[0-9;]*m", "", line)[:300]


@contextlib.contextmanager
def _quiet():
    """The exporter prints progress and graph dumps; keep the CLI's output to its own lines."""
    log = logging.getLogger("torch")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _dynamic_shapes(dynamic_length: bool):
    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=1)
    count = torch.export.Dim("revealing", min=1)
    shapes = {}
    for name in INPUT_NAMES:
        axes = {0: count if name in N_AXIS_INPUTS else batch}
        if dynamic_length and name in ("y", "u_reveal"):
            axes[1] = length
        shapes[name] = axes
    return shapes


def _export_program(step: SamplerStep, args: tuple, opset: int, dynamic_length: bool):
    output_names = ["y_s", "probs"] if step.with_probs else ["y_s"]
    with _quiet():
        return torch.onnx.export(step, args, input_names=list(INPUT_NAMES), output_names=output_names,
                                 dynamo=True, dynamic_shapes=_dynamic_shapes(dynamic_length), opset_version=opset,
                                 external_data=False, optimize=True, verbose=False)


def step_metadata(model, config, checkpoint_meta: dict | None, *, noise_dtype, real_dtype, with_probs,
                  dynamic_length, opset, weights_dtype, nucleus=True) -> dict[str, str]:
    import onnx

    from prime_core.api import distribution_version as _version

    meta = dict(checkpoint_meta or {})
    versions = dict(meta.get("versions", {}))
    versions.update({"prime-export": _version("prime-export"), "torch": torch.__version__,
                     "onnx": onnx.__version__, "prime-core": _version("prime-core")})
    values = {
        "num_classes": model.num_classes, "ell": model.ell, "base": model.base, "length": model.length,
        "mask_id": model.mask_id, "noise": model.noise, "time_conditioned": model.time_conditioned,
        "schedule": meta.get("schedule", {"name": config.model.schedule, **model.schedule.params()}),
        "sampler_defaults": meta.get("sampler_defaults", json.loads(json.dumps(config.to_dict()["sample"]))),
        "components": meta.get("components", {}), "config": config.to_dict(), "versions": versions,
        "step": {"inputs": list(INPUT_NAMES), "outputs": ["y_s", "probs"] if with_probs else ["y_s"],
                 "noise_dtype": str(noise_dtype).removeprefix("torch."),
                 "real_dtype": str(real_dtype).removeprefix("torch."),
                 "weights_dtype": str(weights_dtype).removeprefix("torch."),
                 "dynamic_length": dynamic_length, "opset": opset, "nucleus": nucleus, "draw": DRAW},
    }
    return {META_PREFIX + k: json.dumps(v, sort_keys=True) for k, v in values.items()}


def read_metadata(onnx_model) -> dict:
    """The ``prime.*`` metadata_props of an ONNX model (path or ModelProto), JSON-decoded, prefix removed."""
    import onnx

    if isinstance(onnx_model, (str, os.PathLike)):
        onnx_model = onnx.load(str(onnx_model), load_external_data=False)
    return {p.key[len(META_PREFIX):]: json.loads(p.value) for p in onnx_model.metadata_props
            if p.key.startswith(META_PREFIX)}


def export_step(model, config, output: str, *, checkpoint_meta: dict | None = None, opset: int = DEFAULT_OPSET,
                batch: int = 2, noise_dtype: torch.dtype = torch.float64, real_dtype: torch.dtype = torch.float64,
                weights_dtype: torch.dtype = torch.float32, with_probs: bool = True,
                nucleus: bool = True, dynamic_length: bool = True, force: bool = False,
                backbone_name: str | None = None) -> dict:
    """Export the sampler step of ``model`` to ``output`` (.onnx), run onnx.checker, and return its metadata.

    noise_dtype: dtype of u_token and of the inverse-CDF draw (the ``draw_dtype``); real_dtype: dtype of α and u_reveal (float32 for
    TensorRT, which has no float64); nucleus False leaves the top-p sort out; weights_dtype float16/bfloat16
    gives a reduced-precision graph.
    dynamic_length asks for a dynamic L; the exporter keeps L static where the backbone fixes it (the metadata
    and the graph's input shapes say which)."""
    import onnx

    check_opset(opset)
    check_output(output, force)
    if batch < 1:
        raise PrimeError(f"--batch must be ≥ 1, got {batch}")
    if weights_dtype != torch.float32:
        model = copy.deepcopy(model).to(weights_dtype)  # leave the caller's fp32 model untouched
    model = model.eval()
    # the filter runs in float64 like the eager sampler's; float32 only where the runtime has no float64 (TensorRT)
    step = SamplerStep(model, noise_dtype=noise_dtype, with_probs=with_probs, nucleus=nucleus,
                       filter_dtype=real_dtype).eval()
    args = example_inputs(model, 3, noise_dtype, real_dtype, trace=True)  # B = 3, N = 2L: no size-1 axis
    name = backbone_name or type(model.backbone).__name__
    try:
        with torch.no_grad():
            program = _export_program(step, args, opset, dynamic_length)
    except Exception as exc:  # the exporter raises many kinds; all become one line naming the culprit
        raise PrimeError(f"backbone {name!r} cannot be traced for ONNX export: {untraceable_reason(exc)}") from None
    proto = program.model_proto
    dims = proto.graph.input[0].type.tensor_type.shape.dim  # y: [B, L, ℓ]
    if not dims[0].dim_param:
        raise PrimeError(f"backbone {name!r} fixes the batch size while tracing; the exported step needs a "
                         f"dynamic batch axis (reshape with -1 or the input's own shape)")
    dynamic_length = bool(dims[1].dim_param)  # the exporter keeps L static when the backbone fixes it
    for key, value in step_metadata(model, config, checkpoint_meta, noise_dtype=noise_dtype, real_dtype=real_dtype,
                                    with_probs=with_probs, dynamic_length=dynamic_length, opset=opset,
                                    weights_dtype=weights_dtype, nucleus=nucleus).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise PrimeError(f"exported graph fails onnx.checker: {str(exc).splitlines()[0]}") from None
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(output)}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        onnx.save_model(proto, tmp)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return read_metadata(proto)
