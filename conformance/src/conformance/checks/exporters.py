"""Exporter suite (only when the ``export`` package is installed): one sampler step exported to ONNX gives the
same new sub-tokens as the eager step, and probabilities within 1e-4, under ONNX Runtime. Applied to every
backbone that does not declare ``exportable = False``; skipped cleanly when export / onnxruntime are absent.

An export takes tens of seconds, so it runs once per backbone implementation (the class's ``forward``): on the
registered variant with the fewest parameters at the test spec (presets of one class share the traced code);
the other variants skip, naming the one that was checked."""

from __future__ import annotations

import os
import tempfile

import attrs
import torch

from ..catalog import check
from ..errors import Failure, SkipCheck
from ..toy import perturb_


def _export_api():
    try:
        import onnxruntime  # noqa: F401
        from export.graph import example_inputs, export_step
        from export.step import INPUT_NAMES, SamplerStep
    except ImportError as exc:
        raise SkipCheck(f"export parity needs the export package and onnxruntime ({exc})") from None
    return example_inputs, export_step, INPUT_NAMES, SamplerStep


_REPRESENTATIVE: dict[tuple[int, object], str] = {}


def _representative(subject) -> str:
    """The cheapest exportable registered backbone sharing this one's forward implementation."""
    from .backbones import _spec

    forward = subject.cls.forward
    key = (id(subject.registry), forward)
    if key not in _REPRESENTATIVE:
        sizes = {}
        for name, comp in subject.registry.components["backbone"].items():
            if comp.obj.forward is not forward or getattr(comp.obj, "exportable", True) is False:
                continue
            try:
                opts = dict(getattr(comp.obj, "conformance_options", {}) or {})
                spec_fields = {**attrs.asdict(_spec(subject)), **dict(getattr(comp.obj, "conformance_spec", {}) or {})}
                from prime_core.api import BackboneSpec

                sizes[name] = sum(p.numel() for p in comp.obj(BackboneSpec(**spec_fields), **{**comp.options, **opts}).parameters())
            except Exception:  # noqa: BLE001  (a variant that cannot be built is not a representative)
                continue
        _REPRESENTATIVE[key] = min(sizes, key=lambda n: (sizes[n], n)) if sizes else subject.name
    return _REPRESENTATIVE[key]


@check("backbone")
def check_exported_step_matches_eager(subject):
    """ONNX Runtime runs the exported sampler step with identical y_s and probs within 1e-4 of eager torch."""
    if getattr(subject.cls, "exportable", True) is False:
        raise SkipCheck("backbone declares exportable = False")
    example_inputs, export_step, input_names, SamplerStep = _export_api()
    chosen = _representative(subject)
    if chosen != subject.name:
        raise SkipCheck(f"same forward implementation as backbone {chosen!r}, whose export is checked")
    import onnxruntime as ort

    from prime_core.api import BackboneSpec, BaseBMap, Config, LinearSchedule, PrimeModel

    from .backbones import _spec

    spec = _spec(subject)
    head = subject.registry.build("head", "carry-over")
    spec = BackboneSpec(**{**{f: getattr(spec, f) for f in ("base", "ell", "length", "width", "num_classes")},
                           "out_dim": spec.num_classes})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = perturb_(subject.build(spec), 0, scale=0.1)
    model = PrimeModel(BaseBMap(spec.num_classes, spec.ell), net, head, LinearSchedule()).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "step.onnx")
        export_step(model, Config(), path, batch=3)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        args = example_inputs(model, 3, generator=torch.Generator().manual_seed(1))
        y_ref, p_ref = SamplerStep(model).eval()(*args)
        names = [i.name for i in session.get_inputs()]
        y_ort, p_ort = session.run(None, {n: a.numpy() for n, a in zip(input_names, args) if n in names})
    if not torch.equal(torch.from_numpy(y_ort), y_ref):
        raise Failure("exported step draws different sub-tokens than the eager step", "B=3, seed=1")
    err = float((torch.from_numpy(p_ort).double() - p_ref.detach().double()).abs().max())
    if err > 1e-4:
        raise Failure(f"exported step's probabilities differ from eager by {err:.3g} (> 1e-4)", "B=3, seed=1")


# --------------------------------------------------------------------------------------------- exporter kind
def _tiny_checkpoint(directory: str) -> tuple[str, object]:
    """A small saved model (MLP backbone, C = 6, ℓ = 2, L = 3) for exporters, which take a checkpoint."""
    from prime_core.api import Config, build_model, save_model

    config = Config.from_dict({"model": {"num_classes": 6, "length": 3, "ell": 2, "width": 8,
                                         "backbone_options": {"hidden": 16, "depth": 1}},
                               "data": {"dataset": "toy-markov", "options": {"num_classes": 6, "length": 3}}})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = perturb_(build_model(config), 0, scale=0.1).eval()
    path = os.path.join(directory, "tiny.safetensors")
    save_model(path, model, config)
    return path, model


@check("exporter")
def check_exports_or_refuses_cleanly(subject):
    """export(checkpoint, output) writes a non-empty artifact and returns its path, or — when its runtime is
    missing (e.g. no TensorRT) — raises a one-line PrimeError and writes nothing. An ONNX artifact must give the
    eager step's sub-tokens and probabilities within 1e-4 under ONNX Runtime (when installed)."""
    from prime_core.api import PrimeError

    exporter = subject.build()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, model = _tiny_checkpoint(tmp)
        out = os.path.join(tmp, "exported.bin")
        try:
            result = exporter.export(ckpt, out)
        except PrimeError as exc:
            leftovers = sorted(set(os.listdir(tmp)) - {"tiny.safetensors"})
            if leftovers:
                raise Failure(f"refused ({exc}) but left files behind: {leftovers}", "tiny MLP checkpoint") from None
            if "\n" in str(exc).strip():
                raise Failure("refusal message must be one line", str(exc)) from None
            raise SkipCheck(f"refused cleanly: {exc}") from None
        path = str(result or out)
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            raise Failure(f"export returned {path!r} but no non-empty file is there", "tiny MLP checkpoint")
        _onnx_parity(model, path)


def _onnx_parity(model, path: str) -> None:
    try:
        import onnx
        import onnxruntime as ort
        from export.graph import example_inputs
        from export.step import INPUT_NAMES, SamplerStep
    except ImportError:
        return
    try:
        onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001  (not an ONNX artifact: nothing more to compare here)
        return
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = {i.name: i for i in session.get_inputs()}
    args = example_inputs(model, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y_ref, p_ref = SamplerStep(model).eval()(*args)
    feeds = {n: a.numpy() for n, a in zip(INPUT_NAMES, args) if n in names}
    if set(feeds) != set(names):
        return  # a different signature than the step's: not ours to drive
    outs = session.run(None, feeds)
    if not torch.equal(torch.from_numpy(outs[0]), y_ref):
        raise Failure("exported step draws different sub-tokens than the eager step", "tiny MLP, B=3, seed=1")
    if len(outs) > 1:
        err = float((torch.from_numpy(outs[1]).double() - p_ref.double()).abs().max())
        if err > 1e-4:
            raise Failure(f"exported probabilities differ from eager by {err:.3g} (> 1e-4)", "tiny MLP, B=3")
