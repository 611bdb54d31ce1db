"""Block diffusion on the main job (issue 19, item 5): one table over trained checkpoints, B ∈ {4, 16, L} × ℓ + AR.

For every checkpoint given with ``--model NAME=CKPT`` (the AR baseline with ``--judge``; it is also measured as a
row), all at the main job's data, tokenizer, backbone and steps:

- valid bound: ``prime eval CKPT --json`` run as a subprocess (the config's eval: 256 validation rows, 2 draws);
  a block model prints only its block bounds Σₖ NELBO(xᵏ | x^{<k}) (continuous-time and T-step), MDLM-Prime
  (B = L) its NELBOs, the AR baseline its exact NLL. "PPL ≤" is the one-sided 95 % upper confidence limit
  exp(m + 1.645·se) exactly as printed; the AR row is "PPL =".
- word validity, gen. PPL (judge: prime AR baseline), unigram entropy and NFE / sequence of N samples (seed 0,
  the config's sampler and T steps, float64 draws) at τ = 1, top-p 1 and at τ = 0.8, top-p 0.9, through
  ``bench/text_samplers.measure`` (a block model samples block by block with its KV cache: `sample_rows`).
- generation speed of ``--tokens`` tokens (one row, seed 0, the config's sampler, T and τ/top-p): `generate`,
  i.e. what ``prime sample CKPT --length N`` runs — block models block by block with the KV cache, MDLM-Prime
  and the AR baseline (L = 64) through semi-autoregressive windows of L tokens (stride L/2); the models are
  interleaved in one run (``--repeats`` rounds, best kept), so load slows every model alike.

Quality results are kept per model in <out>/<NAME>.json (reused while the checkpoint is unchanged, so models can
be measured as their trainings finish); the speed run always measures every model given. Prints one markdown
table and writes <out>/block-results.json and <out>/block-results.md.

    python bench/block_results.py --judge runs/res-ar/checkpoint.safetensors \\
        --model "B = 4, ℓ = 2=runs/res-b4/checkpoint.safetensors" … --out runs/block-results [--samples 16]
        [--tokens 1024] [--repeats 1] [--no-speed] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/ is not a package

from text_samplers import measure  # noqa: E402  (one implementation of the sample measures)

from prime_core import get_registry, load_model, presentation  # noqa: E402
from prime_core.api import dataset_for_checkpoint, generate, is_block_model  # noqa: E402
from prime_plugin_text.evaluate import GEN_PPL_LABEL  # noqa: E402

SETTINGS = ((1.0, 1.0), (0.8, 0.9))  # (τ, top-p): plain sampling, the main job's


def bound(checkpoint: str) -> dict:
    """``prime eval CKPT --json`` (one thread): its rows, and the one this table shows — the AR's exact NLL, else
    the continuous-time (block) NELBO — with the T-step bound next to it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    out = subprocess.run(["prime", "eval", checkpoint, "--json"], check=True, capture_output=True, text=True, env=env)
    report = json.loads(out.stdout)
    rows = {r["name"]: r for r in report["metrics"]}
    main = rows.get("ar-nll") or rows.get("block-nelbo") or rows["nelbo"]
    tstep = rows.get("block-tstep-nelbo") or rows.get("tstep-nelbo")
    return {"report": report, "seconds": time.perf_counter() - t0, "name": main["name"], "label": main["label"],
            "kind": main["kind"], "value": main["value"], "stderr": main.get("stderr"),
            "ppl": main.get("perplexity") if main["kind"] == "exact" else main.get("perplexity_upper_bound"),
            "tstep_label": tstep and tstep["label"], "tstep_ppl": tstep and tstep.get("perplexity_upper_bound")}


def load(checkpoint: str, registry):
    """(model, config, sampler, presentation) of a checkpoint, on the CPU."""
    model, config, loaded = load_model(checkpoint, registry)
    shown = presentation(dataset_for_checkpoint(config, loaded.meta.get("data"), registry=registry))
    return model, config, registry.build("sampler", config.sample.sampler, **config.sample.options), shown


def quality(name: str, checkpoint: str, judge, registry, samples: int) -> dict:
    """The bound and the sample measures of one model at both (τ, top-p) settings."""
    model, config, sampler, shown = load(checkpoint, registry)
    row = {"model": name, "checkpoint": checkpoint, "mtime": os.path.getmtime(checkpoint), "ell": model.ell,
           "block_size": getattr(config.model, "block_size", None), "length": model.length,
           "block_model": is_block_model(model), "sampler": config.sample.sampler, "steps": config.sample.steps,
           "samples": samples, "bound": bound(checkpoint)}
    with torch.no_grad():
        row["sampling"] = [{"temperature": tau, "top_p": p,
                            **measure(model, sampler, shown, judge, registry, samples, config.sample.steps, tau, p)}
                           for tau, p in SETTINGS]
    return row


def speed(models: dict[str, str], registry, tokens: int, repeats: int) -> dict[str, dict]:
    """tokens/s of ``generate`` for ``tokens`` tokens, one row, every model once per round (interleaved)."""
    loaded = {name: load(ckpt, registry) for name, ckpt in models.items()}
    best: dict[str, dict] = {}
    with torch.no_grad():
        for _ in range(repeats):
            for name, (model, config, sampler, _) in loaded.items():
                s = config.sample
                t0 = time.perf_counter()
                g = generate(model, sampler, tokens, seeds=[0], steps=s.steps, temperature=s.temperature,
                             top_p=s.top_p, draw_dtype=torch.float64, cache=True, progress=False)
                seconds = time.perf_counter() - t0
                print(f"  speed {name}: {seconds:.1f} s", flush=True)
                if name not in best or seconds < best[name]["seconds"]:
                    best[name] = {"seconds": seconds, "tokens_per_s": tokens / seconds,
                                  "nfe": float(g.nfe.float().mean()), "windows_or_blocks": g.blocks,
                                  "temperature": s.temperature, "top_p": s.top_p, "steps": s.steps}
    return best


def cached(path: str, checkpoint: str, samples: int) -> dict | None:
    """A model's stored quality row if it was measured on this checkpoint file with this many samples."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        row = json.load(fh)
    same = row["checkpoint"] == checkpoint and row["mtime"] == os.path.getmtime(checkpoint)
    return row if same and row["samples"] == samples else None


def markdown_table(rows: list[dict], speeds: dict[str, dict], tokens: int) -> str:
    head = ["model", "valid bound (PPL, 95 % UCL)", "T-step bound (PPL ≤)", "word validity τ = 1, p = 1",
            "word validity τ = 0.8, p = 0.9", f"{GEN_PPL_LABEL} τ = 1 / 0.8", "unigram entropy τ = 1 / 0.8 (nats)",
            "NFE / sequence τ = 1 / 0.8", f"{tokens} tokens: tokens/s (NFE)", "× semi-AR windows, same ℓ"]
    # the speed reference of a row: today's semi-AR windows of the model without blocks at the row's ℓ (the AR
    # baseline, ℓ = 1, against MDLM's)
    windows = {r["ell"]: speeds.get(r["model"], {}).get("tokens_per_s") for r in rows
               if not r["block_model"] and r["bound"]["kind"] != "exact"}
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        b, (plain, main) = r["bound"], r["sampling"]
        relation = "=" if b["kind"] == "exact" else "≤"
        tstep = "—" if b["tstep_ppl"] is None else f"{b['tstep_ppl']:.1f}"
        sp = speeds.get(r["model"])
        sp_text = "not measured" if sp is None else f"{sp['tokens_per_s']:.1f} ({sp['nfe']:.0f})"
        ref_speed = windows.get(r["ell"])
        ratio = "—" if sp is None or ref_speed is None else f"{sp['tokens_per_s'] / ref_speed:.2f}"
        lines.append(f"| {r['model']} | {b['value']:.4f} ± {b['stderr'] or 0:.4f} nats: PPL {relation} {b['ppl']:.1f} "
                     f"| {tstep} | {plain['word_validity']:.3f} | {main['word_validity']:.3f} "
                     f"| {plain['gen_ppl']:.1f} / {main['gen_ppl']:.1f} "
                     f"| {plain['unigram_entropy']:.3f} / {main['unigram_entropy']:.3f} "
                     f"| {plain['nfe_mean']:.1f} / {main['nfe_mean']:.1f} | {sp_text} | {ratio} |")
    return "\n".join(lines)


def parse_models(items: list[str]) -> dict[str, str]:
    """["NAME=CKPT", …] → {NAME: CKPT} (the last '=' splits, names may hold '=')."""
    out = {}
    for item in items:
        name, sep, ckpt = item.rpartition("=")
        if not sep or not name:
            raise SystemExit(f"--model takes NAME=CKPT, got {item!r}")
        out[name] = ckpt
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge", required=True, help="the AR baseline's checkpoint (judge and a row, 'AR baseline')")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=CKPT")
    ap.add_argument("--out", default="runs/block-results")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-speed", action="store_true", help="quality only (the speed run needs every model)")
    ap.add_argument("--speed-from", metavar="JSON", help="with --no-speed: the speeds of an earlier run's "
                    "block-results.json (one interleaved run; models it lacks are 'not measured')")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    registry = get_registry()
    models = {"AR baseline (dit-ar, exact)": args.judge, **parse_models(args.model)}
    judge = load_model(args.judge, registry)[0]
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name, ckpt in models.items():
        path = os.path.join(args.out, re.sub(r"[^A-Za-z0-9]+", "-", ckpt).strip("-") + ".json")
        row = cached(path, ckpt, args.samples)
        if row is None or row["model"] != name:
            print(f"[{name}] {ckpt}", flush=True)
            row = quality(name, ckpt, judge, registry, args.samples)
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(row, fh, indent=1)
        rows.append(row)
    load_before = os.getloadavg()
    if args.no_speed:
        speeds = {}
        if args.speed_from:
            with open(args.speed_from, encoding="utf-8") as fh:
                earlier = json.load(fh)
            speeds = earlier["speed"]
            load_before = earlier.get("speed_load", load_before)
    else:
        speeds = speed(models, registry, args.tokens, args.repeats)
    table = markdown_table(rows, speeds, args.tokens)
    result = {"command_args": vars(args), "rows": rows, "speed": speeds, "uptime": os.getloadavg(),
              "speed_load": load_before if speeds else None,
              "gen_ppl_label": GEN_PPL_LABEL}
    with open(os.path.join(args.out, "block-results.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
    with open(os.path.join(args.out, "block-results.md"), "w", encoding="utf-8") as fh:
        fh.write(table + "\n")
    print(table)
    print(f"load average (1, 5, 15 min) before the speed run: {result['speed_load']}, at the end: "
          f"{os.getloadavg()}")


if __name__ == "__main__":
    main()
