"""The ancestral sampler loop (DESIGN §2.5) driven by an exported step (ONNX Runtime, or a TensorRT engine).

The loop stays in Python; each step's graph call does the backbone, the head, filtering, the inverse-CDF token draw
and the reveal update (`export.step`). The noise is exactly the eager sampler's (`prime_core.sampling.ancestral`): keyed
Philox uniforms (`prime_core.sampling.counter_rng`), the reveal uniforms u_reveal [B, L, U] keyed by (row key, step k,
unit) in float64 (U = ℓ, or 1 with grouped noise) and, for the N positions that reveal something, the token
uniforms u_token [N] keyed by (row key, k, position) in the draw dtype (one per position) — computed for the whole batch
in one vectorised call by the same functions the eager sampler uses, and fed to the graph with the flat positions
they belong to (``positions``). Hence for the same seed the tokens are identical to `AncestralSampler`'s, up to
inverse-CDF comparisons decided by less than the runtimes' numerical difference (~1e-6 in float32). The idle-step
cache is per row: a row that reveals nothing in a step skips the graph call (no NFE), exactly as in the eager
sampler.
"""

from __future__ import annotations

import os
import types
from typing import Callable

import numpy as np
import torch

from prime_core.api import AncestralSampler, PrimeError, SampleResult, Step, first_line, model_device, token_uniforms

from .graph import DRAW
from .step import revealing_positions

StepFn = Callable[[dict], np.ndarray]  # feeds → y_s [B, L, ℓ] int64

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def spec_from_metadata(meta: dict, registry=None):
    """What the loop needs of a model (map f, schedule, sizes), rebuilt from the graph's metadata alone."""
    from prime_core.api import Config, get_registry

    registry = registry or get_registry()
    cfg = Config.from_dict(meta["config"]).model
    origin = (meta.get("components") if isinstance(meta.get("components"), dict) else {}).get  # names what to install
    subtoken_map = registry.build("map", cfg.map, meta["num_classes"], meta["ell"], provided_by=origin("map"),
                                  **cfg.map_options)
    schedule = registry.build("schedule", cfg.schedule, provided_by=origin("schedule"), **cfg.schedule_options)
    return types.SimpleNamespace(map=subtoken_map, schedule=schedule, length=meta["length"], ell=meta["ell"],
                                 base=meta["base"], mask_id=meta["mask_id"], num_classes=meta["num_classes"],
                                 grouped=meta["noise"] == "grouped")


class RuntimeSampler(AncestralSampler):
    """`AncestralSampler.sample` with each step's graph run by ``step_fn`` (see module docstring)."""

    name = "ancestral"

    def __init__(self, step_fn: StepFn, meta: dict, runtime: str = "onnxruntime"):
        if meta["step"].get("draw") != DRAW:
            raise PrimeError("this step graph was exported by an older prime-export (Gumbel noise input [N, C]); "
                             "re-export it with python -m export.onnx CKPT -o STEP.onnx")
        self.step_fn, self.meta, self.runtime = step_fn, meta, runtime
        self.noise_dtype = _DTYPES[meta["step"]["noise_dtype"]]
        self.real_dtype = _DTYPES[meta["step"]["real_dtype"]]
        self.progress_label = f"sampling ({runtime})"

    @classmethod
    def from_onnx(cls, path: str, providers: list[str] | None = None, threads: int | None = None):
        from .graph import read_metadata
        from .validate import ort_session

        if not os.path.isfile(path):
            raise PrimeError(f"--step-model {path} does not exist or is not a file (export one with "
                             f"python -m export.onnx CKPT -o STEP.onnx)")
        try:
            meta = read_metadata(path)
            sess = ort_session(path, providers, threads)
        except Exception as exc:  # onnx / onnxruntime raise their own types for unreadable files
            first = first_line(exc)
            raise PrimeError(f"--step-model {path} is not a readable ONNX model: {first}") from None
        if "step" not in meta:
            raise PrimeError(f"{path} is not an exported prime sampler step (no prime.* metadata)")
        return cls(lambda feeds: sess.run(["y_s"], feeds)[0], meta, "onnxruntime")

    @torch.no_grad()
    def sample(self, model=None, num_samples: int = 16, *, steps: int = 128, seed: int = 0,
               seeds: list[int] | None = None, temperature=1.0, top_p: float = 1.0,
               draw_dtype: torch.dtype | None = None, cache: bool = True, batch_size: int | None = None,
               fixed_tokens=None, fixed_digits=None, return_trajectory: bool = False,
               progress: bool = False) -> SampleResult:
        """Same arguments and result as `AncestralSampler.sample`; ``model`` may be None (the graph's metadata
        then supplies f, the schedule and the sizes). draw_dtype must equal the graph's noise dtype."""
        spec = model if model is not None else spec_from_metadata(self.meta)
        draw_dtype = draw_dtype or self.noise_dtype
        if draw_dtype != self.noise_dtype:
            name = str(self.noise_dtype).removeprefix("torch.")
            raise PrimeError(f"the exported step draws tokens in {name}, not "
                             f"{str(draw_dtype).removeprefix('torch.')}; use --draw-dtype {name} or re-export "
                             f"with --draw-dtype")
        if top_p < 1.0 and not self.meta["step"].get("nucleus", True):
            raise PrimeError(f"top_p={top_p} needs a step exported with nucleus filtering (this one was exported "
                             f"with --no-nucleus)")
        return super().sample(spec, num_samples, steps=steps, seed=seed, seeds=seeds, temperature=temperature,
                              top_p=top_p, draw_dtype=draw_dtype, cache=cache, batch_size=batch_size,
                              fixed_tokens=fixed_tokens, fixed_digits=fixed_digits,
                              return_trajectory=return_trajectory, progress=progress)

    def reveal(self, spec, y, reveal, u_reveal, keys, step: Step) -> torch.Tensor:
        """One graph call for the evaluated rows, fed the eager sampler's own keyed uniforms (module docstring)."""
        y, reveal, u_reveal, keys = y.cpu(), reveal.cpu(), u_reveal.cpu(), keys.cpu()
        pos = reveal.any(-1)  # [m, L] positions that reveal something
        if not bool(pos.any()):  # (with cache=False a step may reveal nothing in any row: y stays as it is)
            return y
        u_token = token_uniforms(keys, step.index, pos, self.noise_dtype)  # [N]
        # float64 graphs compare the uniforms themselves; float32 graphs (TensorRT) get the decision snapped
        # to −1 (reveal) / 2 (keep), so rounding α to float32 cannot change it
        exact_reals = self.real_dtype == torch.float64
        u = u_reveal if exact_reals else torch.where(u_reveal < step.r, -1.0, 2.0)
        real, m = (np.float64 if exact_reals else np.float32), len(y)
        feeds = {"y": y.numpy(), "t": np.full(m, step.t, np.float32),
                 "alpha_t": np.full(m, step.alpha_t, real), "alpha_s": np.full(m, step.alpha_s, real),
                 "u_reveal": u.numpy().astype(real), "u_token": u_token.numpy(),
                 "temperature": np.full(m, step.temperature, np.float32), "top_p": np.full(m, step.top_p, np.float32),
                 "positions": revealing_positions(pos[..., None]).numpy()}
        return torch.from_numpy(np.asarray(self.step_fn(feeds), dtype=np.int64)).to(model_device(spec))


def runtime_sampler(runtime: str, model, config, checkpoint: str, *, step_model: str | None = None,
                    draw_dtype: str | None = None, weights: str = "model", ckpt_meta: dict | None = None,
                    top_p: float | None = None):
    """The sampler `prime sample --runtime` uses: an ONNX Runtime (or TensorRT) driven `RuntimeSampler`.

    Without ``step_model`` the step is exported to a temporary ONNX file first (onnxruntime only), with the
    nucleus sort only if ``top_p`` (default: the config's) is < 1."""
    if runtime == "tensorrt":
        from .engine import TensorRTStep, require_tensorrt

        require_tensorrt()
        if not step_model:
            raise PrimeError("--runtime tensorrt needs --step-model ENGINE (build one with python -m export.trt)")
        engine = TensorRTStep(step_model)
        return _matching(RuntimeSampler(engine, engine.meta, "tensorrt"), model, step_model)
    if runtime != "onnxruntime":
        raise PrimeError(f"--runtime must be one of torch, onnxruntime, tensorrt; got {runtime!r}")
    if step_model:
        return _matching(RuntimeSampler.from_onnx(step_model), model, step_model)
    import sys
    import tempfile

    from .graph import export_step

    # the export takes seconds to minutes (19.8 s for a small DiT on CPU): say why nothing happens yet
    print("prime: note: exporting this checkpoint's sampling step to ONNX first (pass --step-model FILE, from "
          "`prime export onnx`, to skip this)", file=sys.stderr, flush=True)
    noise = _DTYPES[draw_dtype or config.sample.draw_dtype]
    with tempfile.TemporaryDirectory(prefix="prime-step-") as tmp:
        path = os.path.join(tmp, "step.onnx")
        nucleus = (top_p if top_p is not None else config.sample.top_p) < 1.0
        export_step(model, config, path, checkpoint_meta=ckpt_meta, noise_dtype=noise, with_probs=False,
                    nucleus=nucleus, backbone_name=config.model.backbone)
        return RuntimeSampler.from_onnx(path)  # the session holds the graph in memory


def _matching(sampler: RuntimeSampler, model, step_model: str) -> RuntimeSampler:
    """Refuse a step exported from another model: its graph, not the checkpoint, would decide the tokens."""
    for key in ("num_classes", "ell", "length", "base"):
        ours, theirs = getattr(model, key), sampler.meta.get(key)
        if theirs != ours:
            raise PrimeError(f"--step-model {step_model} was exported from another model ({key}={theirs!r}, "
                             f"the checkpoint has {ours!r}); export this checkpoint's step with python -m "
                             f"export.onnx")
    return sampler
