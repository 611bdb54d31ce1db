"""Text benchmarks on this CPU: training throughput and model-FLOPs utilisation against the fp32 matmul FLOP/s
measured in the same run, where a training step's time goes (torch.profiler), and sampling throughput vs ℓ and
steps with and without the idle-step cache.

    python bench/text_bench.py [--json runs/text-bench.json] [--threads N] [--quick]

Default size = configs/main.toml's model: DiT small (4 blocks, D = 128, 4 heads), L = 64, C = 1024 (BPE),
ℓ = 2, batch 32, MDLM NELBO training loss, AdamW. Model FLOPs per token = the backbone's `flops_per_token()`
(matmuls incl. attention); a training step counts 3× that (forward + backward). Random data and weights: the
throughput does not depend on them (sampling: which units are revealed is drawn before the forward pass).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from prime_core import Config, ModelConfig, build_model, get_registry
from prime_core.diffusion.losses import training_nelbo


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_flops(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_time(lambda: a @ b, repeats)


def model(ell: int, width: int, length: int, c: int = 1024):
    cfg = Config(model=ModelConfig(num_classes=c, length=length, ell=ell, width=width, backbone="dit",
                                   backbone_options={"preset": "small", "heads": 4, "cond_dim": 64}))
    return build_model(cfg)


def training(batch: int, length: int, repeats: int, foreach: bool | None, width: int = 128) -> dict:
    torch.manual_seed(0)
    m = model(2, width, length)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, foreach=foreach)
    x = torch.randint(0, m.num_classes, (batch, length))
    g = torch.Generator().manual_seed(0)

    def step():
        loss = training_nelbo(m, x, generator=g).mean() / length
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    y = m.encode(x)

    def backbone_only():
        m.backbone(y).float().square().mean().backward()

    t_step = best_time(step, repeats)
    t_backbone = best_time(backbone_only, repeats)
    fpt = m.backbone.flops_per_token()
    return {"width": width, "batch": batch, "length": length, "params": m.backbone.num_parameters(), "flops_per_token": fpt,
            "step_s": t_step, "tokens_per_s": batch * length / t_step,
            "model_flops_per_s": 3 * fpt * batch * length / t_step,
            "backbone_fwd_bwd_s": t_backbone, "backbone_share": t_backbone / t_step,
            "adamw_foreach": foreach}


def profile_step(batch: int, length: int) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    m = model(2, 128, length)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    x = torch.randint(0, m.num_classes, (batch, length))

    def step():
        loss = training_nelbo(m, x).mean() / length
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows)
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total,
             "calls": e.count} for e in rows[:10]]


def sampling(ells, steps_list, num_samples: int, length: int) -> list[dict]:
    sampler = get_registry().build("sampler", "ancestral")
    out = []
    for ell in ells:
        torch.manual_seed(0)
        m = model(ell, 120, length).eval()
        for steps in steps_list:
            for cache in (True, False):
                t0 = time.perf_counter()
                r = sampler.sample(m, num_samples, steps=steps, seed=0, cache=cache)
                dt = time.perf_counter() - t0
                out.append({"ell": ell, "steps": steps, "cache": cache, "seconds": dt,
                            "tokens_per_s": r.tokens.numel() / dt, "nfe_mean": float(r.nfe.float().mean()),
                            "idle_ratio": float(r.idle_steps.float().mean() / steps)})
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--json", default="runs/text-bench.json")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--widths", type=int, nargs="+", default=[128, 512],
                   help="backbone widths D for the training rows (default 128 = configs/main.toml, and 512)")
    p.add_argument("--no-sampling", action="store_true", help="skip the sampling table")
    p.add_argument("--quick", action="store_true", help="fewer repeats and sampling settings")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 2 if args.quick else 5
    res = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    res["matmul_flops_per_s"] = matmul_flops(repeats=reps * 2)
    res["training"] = [training(args.batch, args.length, reps, foreach, width)
                       for width in args.widths for foreach in (None, True)]
    res["matmul_flops_per_s_after"] = matmul_flops(repeats=reps * 2)  # contention check: same before and after?
    res["profile"] = profile_step(args.batch, args.length)
    res["sampling"] = [] if args.no_sampling else sampling(
        [1, 2, 3, 4] if not args.quick else [1, 2], [32, 128] if not args.quick else [32], 16, args.length)
    import os

    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=2)
    mm = res["matmul_flops_per_s"]
    print(f"fp32 matmul (1024³): {mm / 1e9:.1f} GFLOP/s before, {res['matmul_flops_per_s_after'] / 1e9:.1f} after; "
          f"{res['threads']} threads")
    print("| D | params | AdamW | tokens/s | step s | model GFLOP/s | MFU vs matmul | backbone fwd+bwd share |")
    print("|---|---|---|---|---|---|---|---|")
    for t in res["training"]:
        print(f"| {t['width']} | {t['params'] / 1e6:.2f} M | {'foreach' if t['adamw_foreach'] else 'default'} | "
              f"{t['tokens_per_s']:.0f} | {t['step_s']:.3f} | "
              f"{t['model_flops_per_s'] / 1e9:.2f} | {100 * t['model_flops_per_s'] / mm:.1f} % | "
              f"{100 * t['backbone_share']:.0f} % |")
    print("\nprofile of one training step (self CPU time):")
    for r in res["profile"]:
        print(f"  {r['op']:<50} {r['self_ms']:9.1f} ms {100 * r['share']:5.1f} %  ×{r['calls']}")
    if not res["sampling"]:
        return
    print("\n| ℓ | steps | cache | NFE/seq | idle % | tokens/s | s |")
    print("|---|---|---|---|---|---|---|")
    for r in res["sampling"]:
        print(f"| {r['ell']} | {r['steps']} | {'on' if r['cache'] else 'off'} | {r['nfe_mean']:.1f} | "
              f"{100 * r['idle_ratio']:.1f} | {r['tokens_per_s']:.0f} | {r['seconds']:.2f} |")


if __name__ == "__main__":
    main()
