"""Evaluation: Monte-Carlo estimates of each metric, per token, with standard errors and named bounds.

Perplexity = exp(bound / number of tokens) (not sub-tokens), printed with "≤" and the bound's name; it is
computed only from metrics whose ``is_bound`` is True (DESIGN §2.4).
"""

from __future__ import annotations

import copy
import math

import torch

from .cliargs import given
from .errors import PrimeError, check_count
from .interfaces import ByteLengths, KnownDensity, Metric, MetricResult


@torch.no_grad()
def evaluate_metric(metric: Metric, model, tokens: torch.Tensor, *, mc_samples: int = 1, batch_size: int = 256,
                    seed: int = 0) -> MetricResult:
    """Average over rows and ``mc_samples`` Monte-Carlo draws of metric.per_sequence, in nats per token.

    An estimate needs at least one draw of at least one sequence: anything less is refused, so a bound can
    never be printed from zero samples."""
    check_count("mc_samples", mc_samples)
    check_count("batch_size", batch_size)
    if tokens.ndim != 2 or tokens.shape[0] < 1 or tokens.shape[1] < 1:
        raise PrimeError(f"{metric.name}: need at least one sequence of at least one token, got shape "
                         f"{tuple(tokens.shape)}")
    g = torch.Generator().manual_seed(seed)  # draws stay keyed on a CPU generator: same numbers on every device
    device = model.device
    # summed on the model's device and copied to the host once, after the last batch (no per-batch sync)
    per_row = torch.zeros(tokens.shape[0], dtype=torch.float64, device=device)
    for _ in range(mc_samples):
        start = 0
        for chunk in metric.batches(model, tokens, batch_size):
            per_row[start:start + len(chunk)] += metric.per_sequence(model, chunk.to(device), generator=g).double()
            start += len(chunk)
    per_row = per_row.cpu() / mc_samples
    per_token = per_row / tokens.shape[1]
    stderr = float(per_token.std() / math.sqrt(len(per_token))) if len(per_token) > 1 else math.nan
    return MetricResult(name=metric.name, value=float(per_token.mean()), stderr=stderr, unit="nats/token",
                        is_bound=metric.is_bound,
                        extra={"label": getattr(metric, "label", metric.name), "sequences": tokens.shape[0],
                               "mc_samples": mc_samples})


def perplexity(result: MetricResult) -> float:
    if not result.is_bound:
        raise ValueError(f"{result.name} is not a likelihood bound; refusing to turn it into a perplexity")
    return math.exp(result.value)


def format_result(result: MetricResult) -> str:
    label = result.extra.get("label", result.name)
    line = f"{label:<48} {result.value:9.4f} ± {result.stderr:.4f} nats/token"
    if result.is_bound:
        line += f"   PPL ≤ {perplexity(result):.4f}   BPT ≤ {result.value / math.log(2):.4f}"
    return line


def evaluate_report(checkpoint: str, *, split: str = "valid", mc_samples: int | None = None,
                    steps: int | None = None, max_sequences: int | None = None, weights: str = "model",
                    seed: int = 0, registry=None, data_options: dict | None = None,
                    device: str | torch.device | None = "cpu", batch_size: int | None = None) -> dict:
    """Every registered bound and objective on a held-out split, plus exact references where they exist.
    ``batch_size``: sequences per forward pass (default ``eval.batch_size``; the Monte-Carlo draws follow it).
    ``data_options``: the data set's locations (e.g. {"source": PATH}), which never come from the checkpoint.
    ``device``: where the model runs (`prime_core.device` spec; the bounds run there, their noise is drawn from
    CPU generators so the numbers do not depend on it beyond floating-point rounding)."""
    from . import exact
    from .build import dataset_for_checkpoint, load_model
    from .registry import get_registry

    registry = registry or get_registry()
    model, config, ckpt = load_model(checkpoint, registry, weights=weights, device=device)
    e = config.eval
    dataset = dataset_for_checkpoint(config, ckpt.meta.get("data"), locations=data_options, registry=registry)
    mc, steps, rows = given(mc_samples, e.mc_samples), given(steps, e.tstep_steps), given(max_sequences,
                                                                                       e.max_sequences)
    for name, value in (("mc_samples", mc), ("steps", steps), ("max_sequences", rows)):
        check_count(name, value)
    tokens = dataset.split(split)[:rows]
    own = getattr(model.backbone, "eval_metrics", None)  # e.g. an AR backbone reports its exact NLL instead
    metrics = ([registry.build("metric", name) for name in own] if own else
               [registry.build("metric", "nelbo"), registry.build("metric", "tstep-nelbo", steps=steps),
                registry.build("metric", "joint-loss")])
    batch = given(batch_size, e.batch_size)
    check_count("batch_size", batch)
    results = [evaluate_metric(m, model, tokens, mc_samples=mc, batch_size=batch, seed=seed) for m in metrics]
    bytes_per_token = dataset.bytes_per_token(split) if isinstance(dataset, ByteLengths) else None
    report = {"checkpoint": checkpoint, "split": split, "sequences": int(tokens.shape[0]),
              "tokens_per_sequence": int(tokens.shape[1]), "ell": model.ell, "base": model.base,
              "num_classes": model.num_classes, "mc_samples": mc, "metrics": [{} for _ in results]}
    for r, row in zip(results, report["metrics"]):
        row.update(name=r.name, value=r.value, stderr=r.stderr, unit=r.unit, is_bound=r.is_bound,
                   label=r.extra.get("label", r.name))
        if r.is_bound:
            row["perplexity_upper_bound"] = perplexity(r)
            if bytes_per_token:  # text data: bits per byte = (nats/token) / (ln 2 · bytes/token)
                row["bits_per_byte_upper_bound"] = r.value / (math.log(2) * bytes_per_token)
    if isinstance(dataset, KnownDensity):
        data_lp = dataset.exact_log_prob(tokens)
        report["data_cross_entropy"] = float(-data_lp.mean() / tokens.shape[1])
    n_units = model.length * (1 if model.grouped else model.ell)
    if not own and not model.time_conditioned and n_units <= 8:
        sub = tokens  # same rows as the bounds, so the two are comparable
        with torch.no_grad():  # the enumeration is a CPU reference over ≤ 8 units: a CPU copy of a small model
            ll = exact.exact_log_likelihood(model if model.device.type == "cpu" else copy.deepcopy(model).cpu(),
                                            sub)
        report["exact_nll"] = {"value": float(-ll.mean() / tokens.shape[1]), "sequences": int(sub.shape[0]),
                               "label": "exact NLL (enumerated reveal orders)"}
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['checkpoint']}  split={report['split']}  {report['sequences']} sequences × "
             f"{report['tokens_per_sequence']} tokens  (C={report['num_classes']}, ℓ={report['ell']}, "
             f"b={report['base']}, {report['mc_samples']} Monte-Carlo draws each)"]
    for row in report["metrics"]:
        label = row["label"]
        line = f"  {label:<46} {row['value']:9.4f} ± {row['stderr']:.4f} nats/token"
        if row["is_bound"]:
            line += f"   PPL ≤ {row['perplexity_upper_bound']:.4f}"
            if "bits_per_byte_upper_bound" in row:
                line += f"   BPB ≤ {row['bits_per_byte_upper_bound']:.4f}"
        lines.append(line)
    if "exact_nll" in report:
        x = report["exact_nll"]
        lines.append(f"  {x['label']:<46} {x['value']:9.4f} nats/token   PPL = {math.exp(x['value']):.4f}  "
                     f"(same {x['sequences']} sequences)")
    if "data_cross_entropy" in report:
        v = report["data_cross_entropy"]
        lines.append(f"  {'true data distribution (lower limit)':<46} {v:9.4f} nats/token   PPL = {math.exp(v):.4f}")
    lines.append("  Valid bounds are upper bounds on −log p_θ(x): PPL ≤ exp(bound/token). The joint loss is a "
                 "training objective, not a bound.")
    return "\n".join(lines)
