"""GPU check for prime-export (run by the lead on an H100/H200 from the repo root; < 2 minutes):

    python bench/gpu_export_check.py [--batches 1,8] [--repeats 50]

1. ``import tensorrt`` — expected to fail on this workplace's GPU image (DESIGN §4); prints what happened.
2. Builds the default DiT of configs/main.toml (preset small, D = 128, C = 1024, L = 64, ℓ = 2; random weights,
   seed 0) straight from the repo (no install needed beyond torch), and its sampler step (`export.step`).
3. Exports the step to ONNX (needs onnx + onnxscript) and runs it under ONNX Runtime's CUDA provider if
   available, else the CPU provider; compares with the torch step on CUDA on the same random masked inputs
   (max |Δp|, identical sampled ids) and times both (median per call, after warm-up).
Exits 1 only if a comparison that ran disagrees (ids differ, or |Δp| > 1e-3); missing packages are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path[:0] = [ROOT, os.path.join(ROOT, "plugins", "prime-plugin-dit")]

import torch  # noqa: E402


def timed(fn, repeats, sync=None):
    for _ in range(5):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build_model():
    from prime_core.runs.config import Config
    from prime_core.diffusion.heads import CarryOverHead
    from prime_core.interfaces import BackboneSpec
    from prime_core.diffusion.model import PrimeModel
    from prime_core.diffusion.schedules import LogLinearSchedule
    from prime_core.diffusion.subtokens import BaseBMap
    from prime_plugin_dit.model import DiT

    cfg = Config.from_dict({"model": {"num_classes": 1024, "length": 64, "ell": 2, "width": 128, "backbone": "dit",
                                      "backbone_options": {"preset": "small", "heads": 4, "cond_dim": 64}}})
    torch.manual_seed(0)
    smap = BaseBMap(1024, 2)
    spec = BackboneSpec(out_dim=1024, base=smap.base, ell=2, length=64, width=128, num_classes=1024)
    model = PrimeModel(smap, DiT(spec, preset="small", heads=4, cond_dim=64), CarryOverHead(), LogLinearSchedule())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval(), cfg


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu for a dry run without a GPU")
    args = ap.parse_args()
    ok = True
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
          + (f", device: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    try:
        import tensorrt

        print(f"tensorrt: importable, version {tensorrt.__version__}")
    except Exception as exc:  # ImportError or a missing shared library
        print(f"tensorrt: NOT importable ({type(exc).__name__}: {exc}) — expected here; export.trt exits 2")
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing more to check")
        return 0
    import copy

    try:
        model, cfg = build_model()
    except ImportError as exc:
        print(f"cannot build the model: {exc} (prime-core needs attrs, pluggy, fsspec, safetensors, tqdm); "
              "NOT CHECKED")
        return 1
    sess = None
    try:
        import onnxruntime as ort

        from export.graph import export_step
        from export.validate import feeds
    except ImportError as exc:
        print(f"onnxruntime / onnx / onnxscript missing ({exc}): timing torch on {device} only")
    else:
        path = os.path.join(tempfile.mkdtemp(prefix="prime-gpu-check-"), "step.onnx")
        t0 = time.perf_counter()
        try:
            export_step(copy.deepcopy(model), cfg, path, with_probs=True, nucleus=False)
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in ort.get_available_providers()]
            sess = ort.InferenceSession(path, providers=providers)
            print(f"exported in {time.perf_counter() - t0:.1f} s; onnxruntime {ort.__version__} providers "
                  f"{sess.get_providers()}")
        except Exception as exc:
            print(f"export / session failed: {str(exc).splitlines()[0][:300]}")
    from export.graph import example_inputs
    from export.step import SamplerStep

    step = SamplerStep(model, with_probs=True, nucleus=False).to(device).eval()
    sync = torch.cuda.synchronize if device == "cuda" else None
    print(f"{'batch':>5} {'torch ' + device + ' ms':>14} {'ORT ms':>8} {'torch/ORT':>9} {'max |Δp|':>10} {'ids':>9}")
    for batch in [int(b) for b in args.batches.split(",")]:
        inputs = example_inputs(model, batch, generator=torch.Generator().manual_seed(batch))
        dev_inputs = [a.to(device) for a in inputs]
        with torch.no_grad():
            y_t, p_t = step(*dev_inputs)
            t_torch = timed(lambda: step(*dev_inputs), args.repeats, sync)
        if sess is None:
            print(f"{batch:>5} {1e3 * t_torch:>14.3f} {'-':>8} {'-':>9} {'-':>10} {'-':>9}")
            continue
        fd = feeds(inputs)
        y_o, p_o = sess.run(None, fd)
        t_ort = timed(lambda: sess.run(None, fd), args.repeats)
        err = float((torch.from_numpy(p_o).double() - p_t.double().cpu()).abs().max())
        same = bool((torch.from_numpy(y_o) == y_t.cpu()).all())
        ok &= same and err <= 1e-3
        print(f"{batch:>5} {1e3 * t_torch:>14.3f} {1e3 * t_ort:>8.3f} {t_torch / t_ort:>9.2f} {err:>10.2e} "
              f"{'identical' if same else 'DIFFER':>9}")
    print("OK" if ok else "FAILED: ORT and torch disagree")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
