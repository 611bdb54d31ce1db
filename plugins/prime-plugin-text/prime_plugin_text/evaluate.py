"""Text evaluation beyond `prime eval`'s bounds: sample quality and sampling cost.

- unigram entropy of samples: H = −Σ_v p̂(v) log p̂(v) over the token frequencies p̂ of each sample, averaged over
  samples (nats). Low entropy flags repetitive samples that flatter generative perplexity.
- generative perplexity, judged by an autoregressive model trained here on the same corpus (no pretrained GPT-2
  exists offline): exp(Σ_samples −log p_judge(x) / Σ_samples L), with −log p_judge the judge's exact NLL
  (metric ``ar-nll``). Named "gen. PPL (judge: prime AR baseline)", never a likelihood of the sampled model.
- sampling report: NFE per sequence, idle steps, tokens/s, with the per-row idle-step cache on and off.
  The sampling dtype (Gumbel noise) is recorded, since float32 noise lowers entropy.

``python -m prime_plugin_text.evaluate CKPT [--judge AR_CKPT] [--steps T] [-n N] [--json]``
"""

from __future__ import annotations

import json
import math
import time

import torch

from prime_core import PrimeError, get_registry, load_model, presentation
from prime_core.api import dataset_for_checkpoint, sample_rows
from prime_core.cliargs import (DEBUG_HELP, DRAW_DTYPES, Parser, add_device, add_renamed_option, run_command, samples,
                                seed, steps)

GEN_PPL_LABEL = "gen. PPL (judge: prime AR baseline)"


def unigram_entropy(tokens: torch.Tensor) -> float:
    """Mean over samples [N, L] of the entropy H = −Σ_v p̂(v) log p̂(v) (nats) of each sample's token
    frequencies p̂; all rows at once on the tokens' device (runs of equal ids in each sorted row are counted,
    O(N·L) memory whatever C), one number copied back."""
    n, length = tokens.shape
    ids = tokens.sort(-1).values
    starts = torch.ones_like(ids, dtype=torch.bool)
    starts[:, 1:] = ids[:, 1:] != ids[:, :-1]
    runs = starts.cumsum(-1) - 1 + length * torch.arange(n, device=ids.device).unsqueeze(-1)  # run ids, per row
    p = torch.bincount(runs.flatten(), minlength=n * length).view(n, length).double() / length
    return float(-torch.special.xlogy(p, p).sum(-1).mean())


@torch.no_grad()
def generative_perplexity(judge, tokens: torch.Tensor, registry=None, batch_size: int = 64) -> float:
    """exp(mean judge NLL per token) of samples [N, L] under an autoregressive judge (metric ``ar-nll``)."""
    metric = (registry or get_registry()).build("metric", "ar-nll")
    if tokens.shape[1] != judge.length or int(tokens.max()) >= judge.num_classes:  # one check, one sync
        raise PrimeError(f"the judge models L={judge.length}, C={judge.num_classes}; samples have "
                         f"L={tokens.shape[1]} and ids up to {int(tokens.max())}: train the judge on the same data")
    nll = torch.cat([metric.per_sequence(judge, chunk.to(judge.device))  # stays on the judge's device
                     for chunk in tokens.split(batch_size)]).double()
    return math.exp(float(nll.sum()) / tokens.numel())


def sampling_report(model, sampler, num_samples: int, steps: int, *, seed: int = 0,
                    draw_dtype: str = "float64", temperature: float = 1.0, top_p: float = 1.0) -> dict:
    """Sample with the idle-step cache on and off (same tokens); NFE, idle steps and tokens/s for each."""
    out = {"num_samples": num_samples, "steps": steps, "draw_dtype": draw_dtype}
    tokens = None
    for cache in (True, False):
        t0 = time.perf_counter()
        r = sample_rows(model, sampler, num_samples, steps=steps, seed=seed, cache=cache, temperature=temperature,
                        top_p=top_p, draw_dtype=getattr(torch, draw_dtype))  # block models: block by block
        dt = time.perf_counter() - t0
        key = "cached" if cache else "uncached"
        out[key] = {"nfe_mean": float(r.nfe.float().mean()), "idle_steps_mean": float(r.idle_steps.float().mean()),
                    "idle_ratio": float(r.idle_steps.float().mean() / r.steps), "seconds": dt,
                    "tokens_per_s": r.tokens.numel() / dt, "forward_calls": r.forward_calls}
        if tokens is None:
            tokens = r.tokens
        out["same_tokens"] = bool(torch.equal(tokens, r.tokens))
    out["tokens"] = tokens
    return out


def text_report(checkpoint: str, *, judge: str | None = None, num_samples: int = 16, steps: int | None = None,
                seed: int = 0, draw_dtype: str | None = None, registry=None, device: str | None = "cpu") -> dict:
    """The sampling report, unigram entropy and (with ``judge``) generative perplexity of ``checkpoint``; the
    model and the judge run on ``device`` (`prime_core.api.resolve_device`: auto, cpu, cuda, cuda:N)."""
    registry = registry or get_registry()
    model, config, ckpt = load_model(checkpoint, registry, device=device)
    s = config.sample
    sampler = registry.build("sampler", s.sampler, **s.options)
    rep = sampling_report(model, sampler, num_samples, s.steps if steps is None else steps, seed=seed,
                          draw_dtype=s.draw_dtype if draw_dtype is None else draw_dtype, temperature=s.temperature,
                          top_p=s.top_p)
    tokens = rep.pop("tokens")
    rep["unigram_entropy"] = unigram_entropy(tokens)
    if judge:
        judge_model, _, _ = load_model(judge, registry, device=model.device)
        rep["gen_ppl"] = {"label": GEN_PPL_LABEL, "value": generative_perplexity(judge_model, tokens, registry),
                          "judge": judge}
    dataset = dataset_for_checkpoint(config, ckpt.meta.get("data"), need_data=False, registry=registry)
    rep["samples"] = presentation(dataset).decode_samples(tokens[:4])
    rep["checkpoint"] = checkpoint
    return rep


def format_text_report(rep: dict) -> str:
    lines = [f"{rep['checkpoint']}: {rep['num_samples']} samples × {rep['steps']} steps "
             f"(token draw in {rep['draw_dtype']})"]
    for key in ("cached", "uncached"):
        r = rep[key]
        lines.append(f"  {key:<9} NFE {r['nfe_mean']:7.1f}/seq  idle steps {r['idle_steps_mean']:6.1f} "
                     f"({100 * r['idle_ratio']:5.1f} %)  {r['tokens_per_s']:8.1f} tokens/s")
    lines.append(f"  unigram entropy of samples {rep['unigram_entropy']:.3f} nats")
    if "gen_ppl" in rep:
        lines.append(f"  {rep['gen_ppl']['label']} {rep['gen_ppl']['value']:.2f}")
    lines += [f"  sample: {t[:160]!r}" for t in rep["samples"][:2]]
    return "\n".join(lines)


def add_arguments(p) -> None:
    """The evaluator's arguments (``prime text evaluate`` and ``python -m prime_plugin_text.evaluate``)."""
    p.add_argument("checkpoint")
    p.add_argument("--judge", help="checkpoint of the AR baseline (dit-ar) trained on the same corpus")
    p.add_argument("-n", "--num-samples", type=samples, default=16)
    p.add_argument("--steps", type=steps)
    p.add_argument("--seed", type=seed, default=0)
    add_renamed_option(p, "--draw-dtype", "--gumbel-dtype", choices=DRAW_DTYPES,
                       help="precision of the token draw (default: the config's sample.draw_dtype)")
    p.add_argument("--json", action="store_true")
    add_device(p, what="samples and judges (default auto)")
    p.set_defaults(func=run)


def run(args) -> int:
    rep = text_report(args.checkpoint, judge=args.judge, num_samples=args.num_samples, steps=args.steps,
                      seed=args.seed, draw_dtype=args.draw_dtype, device=args.device)
    print(json.dumps(rep, indent=2) if args.json else format_text_report(rep))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m prime_plugin_text.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    add_arguments(p)
    args = p.parse_args(argv)
    return run_command("prime_plugin_text.evaluate", lambda: run(args), args)


if __name__ == "__main__":
    raise SystemExit(main())
