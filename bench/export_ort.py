"""ONNX Runtime vs eager torch for one sampler step and for whole samples (prime-export, DESIGN §2.5).

Model: the default DiT of configs/main.toml (preset "small": 4 blocks, D = 128, cond_dim 64; C = 1024, L = 64,
ℓ = 2, b = 32; time-independent) with random weights — latency does not depend on training. Falls back to the
MLP of configs/toy2d.toml when prime-plugin-dit is not installed (the table says which).

Measured in one run, same process, same thread count for both runtimes:
  step     one sampler step (the top-p sort is in both only when --top-p < 1) (backbone + head + filter + Gumbel-max + reveal): eager `SamplerStep` vs the same graph
           exported to ONNX (y_s output only), median of --repeats calls, at batch 1 and 8;
  sample   `AncestralSampler.sample` vs `RuntimeSampler` (ONNX Runtime) for n = batch sequences, --steps steps,
           same seed (tokens are checked identical), sequences per second.
Ratios are eager time / ORT time (> 1: ORT faster). Prints a table and writes JSON.

    python bench/export_ort.py [--steps 64] [--repeats 30] [--top-p 1.0] [--json runs/bench/export_ort.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch


def build(backbone: str):
    from prime_core import build_model, load_config
    from prime_core.runs.config import Config

    if backbone == "dit":  # the shipped configs, by name (prime config list)
        cfg = load_config("main", ["model.num_classes=1024", "model.length=64"])
    else:
        cfg = load_config("toy2d", ["model.num_classes=64", "model.length=2"])
    cfg = Config.from_dict(cfg.to_dict())
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model, cfg


def paired_medians(fn_a, fn_b, repeats: int, warmup: int = 2) -> tuple[float, float]:
    """Median seconds of fn_a and fn_b, calls interleaved (a, b, a, b, …) so load changes hit both alike."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((fn_a, ta), (fn_b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def ort_profile(path: str, fd: dict, threads: int, calls: int = 5) -> list[tuple[str, float]]:
    """(operator, % of kernel time) from ONNX Runtime's profiler over ``calls`` runs, largest first."""
    import collections

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.enable_profiling, opts.log_severity_level = threads, True, 3
    opts.profile_file_prefix = os.path.join(os.path.dirname(path), "ort_profile")
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    for _ in range(calls):
        sess.run(["y_s"], fd)
    with open(sess.end_profiling(), encoding="utf-8") as fh:
        events = json.load(fh)
    per_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    total = sum(per_op.values()) or 1
    return [(op, 100 * d / total) for op, d in per_op.most_common()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=64, help="sampling steps T for the whole-sample timing")
    ap.add_argument("--repeats", type=int, default=30, help="timed calls per step measurement (median)")
    ap.add_argument("--sample-repeats", type=int, default=3, help="timed whole-sample runs (median)")
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--backbone", choices=["dit", "mlp"], help="default: dit if installed, else mlp")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads for both runtimes (default 1: on a shared 2-core machine torch's 2 "
                         "spinning OpenMP threads slow down ~10× under load, which would flatter ORT)")
    ap.add_argument("--profile", action="store_true",
                    help="also print ONNX Runtime's per-operator share of a step at each batch size")
    ap.add_argument("--json", default="runs/bench/export_ort.json")
    args = ap.parse_args(argv)

    from export.graph import example_inputs, export_step
    from export.runner import RuntimeSampler
    from export.step import SamplerStep
    from export.validate import feeds, ort_session
    from prime_core import AncestralSampler

    if args.backbone is None:
        try:
            import prime_plugin_dit  # noqa: F401
            args.backbone = "dit"
        except ImportError:
            args.backbone = "mlp"
    torch.set_num_threads(args.threads)
    model, cfg = build(args.backbone)
    threads = torch.get_num_threads()
    import onnxruntime

    tmp = tempfile.mkdtemp(prefix="prime-bench-")
    path = os.path.join(tmp, "step.onnx")
    t0 = time.perf_counter()
    export_step(model, cfg, path, with_probs=False, noise_dtype=torch.float64, nucleus=args.top_p < 1.0)
    export_s = time.perf_counter() - t0
    sess = ort_session(path, threads=threads)
    runner = RuntimeSampler(lambda f: sess.run(["y_s"], f)[0], RuntimeSampler.from_onnx(path).meta)
    step = SamplerStep(model, with_probs=False, nucleus=args.top_p < 1.0).eval()
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        inputs = list(example_inputs(model, batch, generator=torch.Generator().manual_seed(batch)))
        inputs[7] = torch.full((batch,), args.top_p)
        fd = feeds(tuple(inputs))
        with torch.no_grad():
            t_eager, t_ort = paired_medians(lambda: step(*inputs), lambda: sess.run(["y_s"], fd), args.repeats)
        kw = dict(steps=args.steps, seed=0, top_p=args.top_p, draw_dtype=torch.float64)
        res = {}
        s_eager, s_ort = paired_medians(lambda: res.__setitem__("e", AncestralSampler().sample(model, batch, **kw)),
                                        lambda: res.__setitem__("o", runner.sample(model, batch, **kw)),
                                        args.sample_repeats, warmup=1)
        same = bool(torch.equal(res["e"].tokens, res["o"].tokens))
        if args.profile:
            print(f"batch {batch}: ORT operator share of one step: " + ", ".join(
                f"{op} {share:.0f} %" for op, share in ort_profile(path, fd, threads)[:8]))
        rows.append({"batch": batch, "step_ms_torch": 1e3 * t_eager, "step_ms_ort": 1e3 * t_ort,
                     "step_ratio": t_eager / t_ort, "sample_seq_per_s_torch": batch / s_eager,
                     "sample_seq_per_s_ort": batch / s_ort, "sample_ratio": s_eager / s_ort,
                     "forward_calls": res["e"].forward_calls, "nfe_mean": float(res["e"].nfe.float().mean()),
                     "tokens_identical": same})
    m = model
    info = {"backbone": args.backbone, "backbone_options": cfg.model.backbone_options, "width": cfg.model.width,
            "C": m.num_classes, "L": m.length, "ell": m.ell, "b": m.base, "steps": args.steps, "top_p": args.top_p,
            "threads": threads, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "export_seconds": export_s, "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])}
    print(f"{args.backbone} {cfg.model.backbone_options} D={cfg.model.width} C={m.num_classes} L={m.length} "
          f"ℓ={m.ell} b={m.base}; T={args.steps}, top_p={args.top_p}, {threads} threads; export {export_s:.1f} s")
    print(f"{'batch':>5} {'step torch ms':>14} {'step ORT ms':>12} {'ratio':>6} {'seq/s torch':>12} "
          f"{'seq/s ORT':>10} {'ratio':>6} {'NFE':>6} {'same tokens':>11}")
    for r in rows:
        print(f"{r['batch']:>5} {r['step_ms_torch']:>14.2f} {r['step_ms_ort']:>12.2f} {r['step_ratio']:>6.2f} "
              f"{r['sample_seq_per_s_torch']:>12.2f} {r['sample_seq_per_s_ort']:>10.2f} {r['sample_ratio']:>6.2f} "
              f"{r['nfe_mean']:>6.1f} {str(r['tokens_identical']):>11}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump({"info": info, "rows": rows}, fh, indent=2)
    print(f"wrote {args.json}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
