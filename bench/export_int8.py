"""int8 ONNX step vs fp32 ONNX and eager torch on a trained checkpoint: speed and sample quality (issue 21 item 6).

    python bench/export_int8.py --checkpoint runs/main/checkpoint.safetensors \
        --judge runs/ar/checkpoint.safetensors [--samples 32] [--repeats 30] [--json runs/bench/export_int8.json]

The checkpoint's step is exported twice, fp32 (`export.graph.export_step`, y_s only; the top-p sort only if the
config's top_p < 1), int8 dynamic (`export.quantize.quantize_int8`: ONNX Runtime dynamic quantization of the
MatMul / Gemm weights) and int8 static (the same with activation scales calibrated on --calibration-rows rows of
the checkpoint's data set noised at random t, `export.calibration`). One thread for every runtime.

- step: one sampler step at batch 1 and 8 on the same random masked inputs — eager `SamplerStep`, fp32 ORT, int8
  ORT, the three calls interleaved; median of --repeats calls.
- quality: --samples rows, seed 0, the config's T / temperature / top-p, float64 draw, from the eager ancestral
  sampler, the fp32 ORT step and the int8 ORT step: word validity (`prime_plugin_text.words`, the data set's
  sample score), generative perplexity under the AR judge (--judge, a ``dit-ar`` checkpoint trained on the same
  data: `prime_plugin_text.evaluate.generative_perplexity`; a proxy, not a likelihood of the sampled model),
  unigram entropy, and the fraction of tokens equal to the eager sampler's.
Prints two tables and writes JSON.
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


def medians(fns: dict, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds of each callable, the calls interleaved (a, b, c, a, b, c, …)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def quality(name, result, eager_tokens, shown, judge, registry) -> dict:
    from prime_plugin_text.evaluate import generative_perplexity, unigram_entropy

    texts = shown.decode_samples(result.tokens)
    [score] = [s for s in shown.score_samples(texts) if s["name"] == "word_validity"]
    return {"runtime": name, "word_validity": score["value"],
            "gen_ppl": None if judge is None else generative_perplexity(judge, result.tokens.cpu(), registry),
            "unigram_entropy": unigram_entropy(result.tokens.cpu()),
            "tokens_equal_to_eager": float((result.tokens == eager_tokens).double().mean()),
            "sample": texts[0][:160]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--judge", help="AR (dit-ar) checkpoint on the same data (without it: no gen. PPL column)")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--calibration-rows", type=int, default=64, help="rows calibrating the static int8 step")
    ap.add_argument("--json", default="runs/bench/export_int8.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    import onnxruntime

    from export.graph import example_inputs, export_step
    from export.calibration import StepCalibrationReader, calibration_rows, step_feeds
    from export.quantize import quantize_int8
    from export.runner import RuntimeSampler
    from export.step import SamplerStep
    from export.validate import feeds, ort_session
    from prime_core import AncestralSampler, get_registry, load_model, presentation
    from prime_core.api import dataset_for_checkpoint

    registry = get_registry()
    model, cfg, ckpt = load_model(args.checkpoint, registry)
    judge = load_model(args.judge, registry)[0] if args.judge else None
    s = cfg.sample
    nucleus = s.top_p < 1.0
    tmp = tempfile.mkdtemp(prefix="prime-int8-")
    paths = {"fp32": os.path.join(tmp, "step.onnx"), "int8": os.path.join(tmp, "step-int8.onnx"),
             "int8 static": os.path.join(tmp, "step-int8-static.onnx")}
    export_step(model, cfg, paths["fp32"], checkpoint_meta=ckpt.meta, with_probs=False,
                noise_dtype=torch.float64, nucleus=nucleus, backbone_name=cfg.model.backbone)
    quantize_int8(paths["fp32"], paths["int8"])
    rows_x = calibration_rows(model, cfg, ckpt.meta, args.calibration_rows)
    reader = StepCalibrationReader(paths["fp32"], step_feeds(model, cfg, rows_x))
    quantize_int8(paths["fp32"], paths["int8 static"], reader, args.calibration_rows)
    sessions = {k: ort_session(p, threads=1) for k, p in paths.items()}
    step = SamplerStep(model, with_probs=False, nucleus=nucleus).eval()
    speed = []
    for batch in [int(b) for b in args.batches.split(",")]:
        inputs = list(example_inputs(model, batch, generator=torch.Generator().manual_seed(batch)))
        inputs[7] = torch.full((batch,), s.top_p)
        fd = feeds(tuple(inputs))
        with torch.no_grad():
            med = medians({"eager": lambda: step(*inputs),
                           "fp32 ORT": lambda: sessions["fp32"].run(["y_s"], fd),
                           "int8 ORT": lambda: sessions["int8"].run(["y_s"], fd),
                           "int8 static ORT": lambda: sessions["int8 static"].run(["y_s"], fd)}, args.repeats)
        speed.append({"batch": batch, **{f"{k} ms": 1e3 * v for k, v in med.items()},
                      "int8 vs eager": med["eager"] / med["int8 ORT"],
                      "int8 static vs eager": med["eager"] / med["int8 static ORT"],
                      "int8 static vs fp32 ORT": med["fp32 ORT"] / med["int8 static ORT"],
                      "int8 vs fp32 ORT": med["fp32 ORT"] / med["int8 ORT"],
                      "fp32 ORT vs eager": med["eager"] / med["fp32 ORT"]})
    shown = presentation(dataset_for_checkpoint(cfg, ckpt.meta.get("data"), registry=registry))
    kw = dict(steps=s.steps, seed=0, temperature=s.temperature, top_p=s.top_p, draw_dtype=torch.float64)
    eager = AncestralSampler().sample(model, args.samples, **kw)
    rows = [quality("eager", eager, eager.tokens, shown, judge, registry)]
    for name, path in paths.items():
        sess = sessions[name]
        runner = RuntimeSampler(lambda f, sess=sess: sess.run(["y_s"], f)[0], RuntimeSampler.from_onnx(path).meta)
        rows.append(quality(f"{name} ORT", runner.sample(model, args.samples, **kw), eager.tokens, shown, judge,
                            registry))
    info = {"checkpoint": args.checkpoint, "judge": args.judge, "backbone": cfg.model.backbone,
            "width": cfg.model.width, "C": model.num_classes, "L": model.length, "ell": model.ell,
            "steps": s.steps, "temperature": s.temperature, "top_p": s.top_p, "samples": args.samples,
            "threads": 1, "calibration_rows": args.calibration_rows, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "sizes_bytes": {k: os.path.getsize(p) for k, p in paths.items()},
            "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])}
    print(f"{cfg.model.backbone} D={cfg.model.width} C={model.num_classes} L={model.length} ℓ={model.ell}; "
          f"1 thread; graph sizes fp32 {info['sizes_bytes']['fp32'] / 1e6:.1f} MB, int8 "
          f"{info['sizes_bytes']['int8'] / 1e6:.1f} MB, int8 static {info['sizes_bytes']['int8 static'] / 1e6:.1f} MB; "
          f"{args.calibration_rows} calibration rows")
    print("| batch | eager ms | fp32 ORT ms | int8 dyn. ORT ms | int8 static ORT ms | dyn. ÷ eager speed | "
          "static ÷ eager speed | static ÷ fp32 ORT speed |")
    print("|---|---|---|---|---|---|---|---|")
    for r in speed:
        print(f"| {r['batch']} | {r['eager ms']:.2f} | {r['fp32 ORT ms']:.2f} | {r['int8 ORT ms']:.2f} | "
              f"{r['int8 static ORT ms']:.2f} | {r['int8 vs eager']:.2f}× | {r['int8 static vs eager']:.2f}× | "
              f"{r['int8 static vs fp32 ORT']:.2f}× |")
    print(f"\n{args.samples} samples, T={s.steps}, τ={s.temperature}, top-p={s.top_p}, seed 0")
    print("| runtime | word validity | gen. PPL (AR judge) | unigram entropy | tokens = eager's |")
    print("|---|---|---|---|---|")
    for r in rows:
        ppl = "n/a (no --judge)" if r["gen_ppl"] is None else f"{r['gen_ppl']:.1f}"
        print(f"| {r['runtime']} | {r['word_validity']:.3f} | {ppl} | {r['unigram_entropy']:.3f} | "
              f"{100 * r['tokens_equal_to_eager']:.1f} % |")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump({"info": info, "speed": speed, "quality": rows}, fh, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
