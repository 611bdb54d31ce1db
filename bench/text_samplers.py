"""Samplers on the main job's model, ℓ = 1 vs ℓ = 2: word validity, judged generative perplexity, entropy, NFE.

Trains (or reuses) the main job's model (configs/main.toml) at ℓ = 1 and ℓ = 2 and the AR baseline (``dit-ar``,
next-token loss, the same data, tokenizer, steps and batch), all at the same budget. Then, for each sampler in
``--samplers`` that the registry knows (others are reported "n/a": not installed), draws N samples per model with
the config's steps T, temperature, top-p and float64 Gumbel noise, seed 0, and reports

- word-validity fraction: generated words (whitespace split, outer punctuation stripped, lowercased) found in
  the training split's words (`prime_plugin_text.words`);
- gen. PPL (judge: prime AR baseline): exp(Σ −log p_AR(x) / Σ L) of the samples under the AR baseline trained
  here (`prime_plugin_text.evaluate.generative_perplexity`) — a proxy, not a likelihood of the sampled model;
- unigram entropy (nats), the mean over samples of the entropy of each sample's token frequencies (low values
  flag repetitive samples that flatter gen. PPL);
- NFE: backbone evaluations per sequence (the idle-step cache on).

The AR baseline's own samples (sampler ``ar``) are reported on the same measures. Everything is measured in one
run of this script; it prints one markdown table and writes <out>/samplers.json and <out>/samplers.md.

    python bench/text_samplers.py --out runs/text-samplers [--steps S] [--samples N] [--sample-steps T]
        [--samplers ancestral first-hitting remdm confidence] [--sampler-option remdm:eta=0.02]
        [--temperature τ] [--top-p p] [--threads 1]

A model folder whose checkpoint has the same config (and step count) is reused; delete it to retrain.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from prime_core import get_registry, load_config, load_model, presentation, read_checkpoint
from prime_core.api import dataset_for_checkpoint, sample_rows
from prime_core.runs.config import parse_override
from prime_plugin_text.evaluate import GEN_PPL_LABEL, generative_perplexity, unigram_entropy

SAMPLERS = ("ancestral", "first-hitting", "remdm", "confidence")
AR = ["model.ell=1", 'model.backbone="dit-ar"', 'train.loss="ar-nll"', 'sample.sampler="ar"']


def train(config, out_dir: str, registry) -> tuple[str, float]:
    """Train ``config`` into ``out_dir`` unless its checkpoint already holds this config at its last step."""
    ckpt = os.path.join(out_dir, "checkpoint.safetensors")
    if os.path.exists(ckpt):
        meta = read_checkpoint(ckpt).meta
        stored = {k: v for k, v in (meta.get("config") or {}).items() if k not in ("model", "sample")}
        wanted = {k: v for k, v in config.to_dict().items() if k not in ("model", "sample")}
        same_model = {k: (meta.get("config") or {}).get("model", {}).get(k) for k in ("ell", "backbone", "width")} \
            == {k: getattr(config.model, k) for k in ("ell", "backbone", "width")}
        if stored == wanted and same_model and meta.get("train_state", {}).get("step") == config.train.steps:
            return ckpt, math.nan
    t0 = time.perf_counter()
    registry.build("trainer", config.train.trainer).fit(config, out_dir=out_dir, force=True, progress=False)
    return ckpt, time.perf_counter() - t0


def sampler_options(items: list[str]) -> dict[str, dict]:
    """["remdm:eta=0.02", …] → {"remdm": {"eta": 0.02}} (values in TOML syntax)."""
    out: dict[str, dict] = {}
    for item in items:
        name, _, kv = item.partition(":")
        keys, value = parse_override(f"option.{kv}")
        out.setdefault(name, {})[".".join(keys[1:])] = value
    return out


def measure(model, sampler, shown, judge, registry, samples: int, steps: int, temperature: float,
            top_p: float) -> dict:
    """One row: sample, then word validity, gen. PPL by the judge, unigram entropy and NFE of those samples."""
    t0 = time.perf_counter()
    r = sample_rows(model, sampler, samples, steps=steps, seed=0, temperature=temperature, top_p=top_p,
                    draw_dtype=torch.float64)  # a block model: block by block, its KV cache on
    seconds = time.perf_counter() - t0
    texts = shown.decode_samples(r.tokens)
    [score] = [sc for sc in shown.score_samples(texts) if sc["name"] == "word_validity"]
    return {"steps": r.steps, "word_validity": score["value"], "word_validity_detail": score["detail"],
            "gen_ppl": generative_perplexity(judge, r.tokens.cpu(), registry),
            "unigram_entropy": unigram_entropy(r.tokens.cpu()), "nfe_mean": float(r.nfe.float().mean()),
            "seconds": seconds, "samples": texts[:3]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="main")
    p.add_argument("--out", default="runs/text-samplers")
    p.add_argument("--steps", type=int, help="training steps (default: the config's)")
    p.add_argument("--ells", type=int, nargs="+", default=[1, 2])
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    p.add_argument("--sampler-option", action="append", default=[], metavar="NAME:KEY=VALUE")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--sample-steps", type=int, help="sampling steps T (default: the config's sample.steps)")
    p.add_argument("--temperature", type=float, help="default: the config's sample.temperature")
    p.add_argument("--top-p", type=float, help="default: the config's sample.top_p")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    registry = get_registry()
    options = sampler_options(args.sampler_option)
    base = [f"train.steps={args.steps}"] if args.steps else []
    t_start = time.perf_counter()
    models = {"ar": load_config(args.config, base + AR)}
    models.update({f"ell{e}": load_config(args.config, base + [f"model.ell={e}"]) for e in args.ells})
    ckpts, train_s = {}, {}
    for name, config in models.items():  # the AR baseline first: it judges the others
        print(f"[{name}] training {config.train.steps} steps → {os.path.join(args.out, name)}", flush=True)
        ckpts[name], train_s[name] = train(config, os.path.join(args.out, name), registry)
    judge = load_model(ckpts["ar"], registry)[0]
    rows = []
    for name, ckpt in ckpts.items():
        model, config, loaded = load_model(ckpt, registry)
        shown = presentation(dataset_for_checkpoint(config, loaded.meta.get("data"), registry=registry))
        steps = args.sample_steps or config.sample.steps
        for sampler_name in (["ar"] if name == "ar" else args.samplers):
            temperature = config.sample.temperature if args.temperature is None else args.temperature
            top_p = config.sample.top_p if args.top_p is None else args.top_p
            row = {"model": name, "ell": model.ell, "sampler": sampler_name, "steps": steps,
                   "train_seconds": train_s[name], "temperature": temperature, "top_p": top_p}
            if sampler_name not in registry.names("sampler"):
                rows.append({**row, "available": False})
                print(f"  {name} {sampler_name}: n/a (not installed)", flush=True)
                continue
            sampler = registry.build("sampler", sampler_name, **options.get(sampler_name, {}))
            row.update(available=True, **measure(model, sampler, shown, judge, registry, args.samples, steps,
                                                 temperature, top_p))
            rows.append(row)
            print(f"  {name} {sampler_name}: words {row['word_validity']:.3f}  gen. PPL {row['gen_ppl']:.1f}  "
                  f"entropy {row['unigram_entropy']:.3f}  NFE {row['nfe_mean']:.1f}", flush=True)
    result = {"command_args": vars(args), "samples": args.samples, "rows": rows,
              "seconds": time.perf_counter() - t_start, "gen_ppl_label": GEN_PPL_LABEL}
    os.makedirs(args.out, exist_ok=True)
    table = markdown_table(rows, args.samples)
    with open(os.path.join(args.out, "samplers.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    with open(os.path.join(args.out, "samplers.md"), "w", encoding="utf-8") as fh:
        fh.write(table + "\n")
    print(table)
    print(f"total {result['seconds']:.0f} s")


def markdown_table(rows: list[dict], samples: int) -> str:
    lines = [f"| model | ℓ | sampler | T | τ, top-p | word-validity fraction | {GEN_PPL_LABEL} | unigram entropy (nats) | "
             "NFE / sequence |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        model = "AR baseline (dit-ar)" if r["model"] == "ar" else "MDLM-Prime (main job)"
        if not r["available"]:
            lines.append(f"| {model} | {r['ell']} | `{r['sampler']}` | {r['steps']} | {r['temperature']:g}, "
                         f"{r['top_p']:g} | n/a | n/a | n/a | n/a |")
            continue
        wv = "n/a" if r["word_validity"] is None else f"{r['word_validity']:.3f}"
        lines.append(f"| {model} | {r['ell']} | `{r['sampler']}` | {r['steps']} | {r['temperature']:g}, "
                     f"{r['top_p']:g} | {wv} | {r['gen_ppl']:.1f} | "
                     f"{r['unigram_entropy']:.3f} | {r['nfe_mean']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
