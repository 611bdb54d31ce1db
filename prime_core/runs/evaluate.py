"""Evaluation: Monte-Carlo estimates of each metric, per token, with standard errors and named bounds.

Every figure has a kind (`KINDS`), and one rule prints it (docs/concepts.md, "How prime reports a Monte-Carlo
bound"):
- ``exact``: an exact value (an AR model's NLL, the enumerated NLL of a tiny model): "PPL = exp(v)".
- ``bound``: an upper bound computed exactly (no sampling): "PPL ≤ exp(v)".
- ``bound-estimate``: a Monte-Carlo estimate m ± se (n draws) of an upper bound (the NELBOs). The bound holds in
  expectation only — one estimate can fall below the exact NLL — so the "≤" figure is the one-sided 95 % upper
  confidence limit PPL ≤ exp(m + 1.645·se), labelled so; with one draw se is undefined and no "≤" is printed.
- ``objective``: a training objective (the joint loss): "not a bound", never a perplexity.
Perplexity = exp(nats per token) (tokens, not sub-tokens; DESIGN §2.4). A value whose exp overflows a float
(> 709.78 nats/token, a diverged model) is printed as "PPL > 1e308", or "PPL bound > 1e308 (vacuous)" for a bound
(JSON: null, ``perplexity_overflow``: true);
a NaN or infinite value is an error (`NonFiniteError`), never printed.
"""

from __future__ import annotations

import copy
import math

import torch

from ..cliargs import given
from ..diffusion import block as block_diffusion
from ..diffusion.block_exact import exact_block_log_likelihood
from ..errors import NonFiniteError, PrimeError, check_count
from ..interfaces import ByteLengths, KnownDensity, Metric, MetricResult


KINDS = ("exact", "bound", "bound-estimate", "objective")
Z95 = 1.645  # one-sided 95 % normal quantile: Φ(1.645) = 0.95
MAX_EXP = math.log(1.7976931348623157e308)  # 709.78: exp of anything larger overflows a float
_LABELS = {"exact": "exact", "bound": "upper bound", "bound-estimate": "Monte-Carlo estimate of an upper bound",
           "objective": "training objective, not a bound"}
_RELATIONS = {"exact": "=", "bound": "≤", "bound-estimate": "≤", "objective": "not a bound"}


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown result kind {kind!r}; kinds: {', '.join(KINDS)}")
    return kind


def bound_label(kind: str) -> str:
    """What a figure of this kind is, in words, for any printer (CLI, JSON, report.md, lm-eval, a server):
    "exact", "upper bound", "Monte-Carlo estimate of an upper bound" or "training objective, not a bound"."""
    return _LABELS[_check_kind(kind)]


def bound_relation(kind: str) -> str:
    """How its perplexity is printed: exact "=", bound and bound-estimate "≤" (the latter's figure is the 95 %
    upper confidence limit), objective "not a bound" (no perplexity)."""
    return _RELATIONS[_check_kind(kind)]


def metric_kind(metric) -> str:
    """A metric's ``kind`` if it declares one, else "bound-estimate" for ``is_bound`` metrics (a per-sequence
    Monte-Carlo estimate) and "objective" otherwise."""
    kind = getattr(metric, "kind", None)
    return _check_kind(kind) if kind else ("bound-estimate" if metric.is_bound else "objective")


def safe_exp(x: float) -> float | None:
    """exp(x), or None where it overflows a float (x > 709.78): printed "> 1e308", JSON null."""
    return math.exp(x) if x <= MAX_EXP else None


def ucl95(estimate: float, stderr: float) -> float | None:
    """The one-sided 95 % upper confidence limit m + 1.645·se of a Monte-Carlo estimate; None without an se, and
    None when se = 0: draws that show no spread (e.g. two T-step draws that both fell on fully revealed states,
    which contribute 0) say nothing about the estimator's variance, so they support no "≤"."""
    return estimate + Z95 * stderr if math.isfinite(stderr) and stderr > 0 else None


def _standard_error(draws: torch.Tensor) -> float:
    """se of the mean of draws [mc, rows]: over rows (each averaged over its draws) when there are several,
    over the draws of the one row otherwise; NaN with a single draw (no spread to estimate it from)."""
    per_row = draws.mean(0)
    if per_row.numel() > 1:
        return float(per_row.std() / math.sqrt(per_row.numel()))
    if draws.shape[0] > 1:
        return float(draws[:, 0].std() / math.sqrt(draws.shape[0]))
    return math.nan


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
    # kept on the model's device and copied to the host once, after the last batch (no per-batch sync)
    draws = torch.zeros(mc_samples, tokens.shape[0], dtype=torch.float64, device=device)
    for d in _draws(mc_samples, metric.name):
        start = 0
        for chunk in metric.batches(model, tokens, batch_size):
            draws[d, start:start + len(chunk)] = metric.per_sequence(model, chunk.to(device), generator=g).double()
            start += len(chunk)
    draws = draws.cpu() / tokens.shape[1]  # nats per token
    label = getattr(metric, "label", metric.name)
    check_finite_values(draws, label)
    kind = metric_kind(metric)
    return MetricResult(name=metric.name, value=float(draws.mean()), stderr=_standard_error(draws),
                        unit="nats/token", is_bound=metric.is_bound,
                        extra={"label": label, "sequences": tokens.shape[0], "mc_samples": mc_samples,
                               "draws": draws.numel(), "kind": kind})


def check_finite_values(values: torch.Tensor, what: str) -> None:
    """Raise `NonFiniteError` (one line) when any value is NaN or ±inf: never print "≤ nan"."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        raise NonFiniteError(f"{what}: {int(bad.sum())} of {values.numel()} values are not finite (NaN or ±inf): "
                              f"the model's log-probabilities are not finite (diverged weights?); nothing to report")


#: seconds of Monte-Carlo draws before their progress bar appears (on a terminal only)
PROGRESS_DELAY_S = 2.0


def _draws(mc_samples: int, name: str):
    """range(mc_samples) with a progress bar on stderr, shown only on a terminal (``disable=None``) and only once
    the draws have taken 2 s: ``--mc 100000`` tells the user how long it will take instead of going silent."""
    from tqdm.auto import tqdm

    return tqdm(range(mc_samples), desc=f"{name}: Monte-Carlo draws", unit="draw", delay=PROGRESS_DELAY_S,
                leave=False, disable=None)


def perplexity(result: MetricResult) -> float:
    """exp(value) of a bound or exact value (not the confidence limit: see `result_row`); overflow → inf."""
    if not result.is_bound:
        raise ValueError(f"{result.name} is not a likelihood bound; refusing to turn it into a perplexity")
    value = safe_exp(result.value)
    return math.inf if value is None else value


def _nan_to_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def result_row(result: MetricResult, bytes_per_token: float | None = None) -> dict:
    """The JSON row of one result (every printer reads these fields):
    name, label, kind, estimate (= value), stderr and ucl95 (null when undefined), draws, unit, is_bound, and
    for exact values ``perplexity`` = exp(v); for bounds ``perplexity_upper_bound`` = exp(v) (kind "bound") or
    exp(ucl95) (kind "bound-estimate", null without an se); ``bits_per_byte[_upper_bound]`` likewise when
    ``bytes_per_token`` is known; ``perplexity_overflow`` when exp overflows. Objectives get no perplexity."""
    kind = result.extra.get("kind") or metric_kind(result)
    v, se = result.value, result.stderr
    ucl = ucl95(v, se) if kind == "bound-estimate" else None
    row = {"name": result.name, "label": result.extra.get("label", result.name), "kind": kind, "value": v,
           "estimate": v, "stderr": _nan_to_none(se), "draws": result.extra.get("draws"), "ucl95": ucl,
           "unit": result.unit, "is_bound": result.is_bound}
    if kind == "objective":
        return row
    figure = ucl if kind == "bound-estimate" else v  # the number the "=" or "≤" is about
    suffix = "" if kind == "exact" else "_upper_bound"
    row["perplexity" + suffix] = None if figure is None else safe_exp(figure)
    if figure is not None and row["perplexity" + suffix] is None:
        row["perplexity_overflow"] = True
    if bytes_per_token:  # text data: bits per byte = (nats/token) / (ln 2 · bytes/token)
        row["bits_per_byte" + suffix] = None if figure is None else figure / (math.log(2) * bytes_per_token)
    return row


def _ppl(relation: str, x: float | None) -> str:
    """"PPL = 52.0400" / "PPL ≤ 52.0400"; where exp overflowed, "PPL > 1e308" (exact) or "PPL bound > 1e308
    (vacuous)" (a bound that large says nothing)."""
    if x is not None:
        return f"PPL {relation} {x:.4f}"
    return "PPL > 1e308" if relation == "=" else "PPL bound > 1e308 (vacuous)"


def figure_text(row: dict) -> str:
    """The text after a row's label, by its kind (module docstring):
    exact        "3.9520 nats/token   PPL = 52.0400"
    bound        "3.9520 nats/token   PPL ≤ 52.0400"
    estimate     "estimate 3.9520 ± 0.0100 nats/token (128 draws)   PPL ≤ 52.90 (95 % upper confidence limit)"
    objective    "3.9520 ± 0.0100 nats/token (128 draws)   not a bound"."""
    kind, v = row.get("kind") or ("bound-estimate" if row["is_bound"] else "objective"), row["value"]
    se, draws = row.get("stderr"), row.get("draws")
    spread = (f" ± {se:.4f}" if se is not None else "") + " nats/token" + (f" ({draws} draws)" if draws else "")
    if kind == "exact":
        return f"{v:.4f} nats/token   {_ppl('=', row.get('perplexity'))}" + _bpb(row, "=")
    if kind == "bound":
        return f"{v:.4f} nats/token   {_ppl('≤', row.get('perplexity_upper_bound'))}" + _bpb(row, "≤")
    if kind == "objective":
        return f"{v:.4f}{spread}   not a bound"
    text = f"estimate {v:.4f}{spread}"
    if row.get("ucl95") is None:
        return text + "   no upper confidence limit (one draw, or draws without spread: no standard error)"
    return (text + f"   {_ppl('≤', row.get('perplexity_upper_bound'))} (95 % upper confidence limit)"
            + _bpb(row, "≤"))


def _bpb(row: dict, relation: str) -> str:
    key = "bits_per_byte" if relation == "=" else "bits_per_byte_upper_bound"
    return f"   BPB {relation} {row[key]:.4f}" if row.get(key) is not None else ""


def evaluate_report(checkpoint: str, *, split: str = "valid", mc_samples: int | None = None,
                    steps: int | None = None, max_sequences: int | None = None, weights: str = "model",
                    seed: int = 0, registry=None, data_options: dict | None = None,
                    device: str | torch.device | None = "cpu", batch_size: int | None = None) -> dict:
    """Every registered bound and objective on a held-out split, plus exact references where they exist.
    ``batch_size``: sequences per forward pass (default ``eval.batch_size``; the Monte-Carlo draws follow it).
    ``data_options``: the data set's locations (e.g. {"source": PATH}), which never come from the checkpoint.
    ``device``: where the model runs (`prime_core.device` spec; the bounds run there, their noise is drawn from
    CPU generators so the numbers do not depend on it beyond floating-point rounding)."""
    from ..diffusion import exact
    from .build import dataset_for_checkpoint, load_model
    from ..plugin.default import get_registry

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
    if block_diffusion.is_block_model(model):  # only the block bounds describe a block model (DESIGN §2.8)
        own = ()
        metrics = [registry.build("metric", "block-nelbo"), registry.build("metric", "block-tstep-nelbo", steps=steps),
                   registry.build("metric", "block-joint-loss")]
    else:
        metrics = ([registry.build("metric", name) for name in own] if own else
                   [registry.build("metric", "nelbo"), registry.build("metric", "tstep-nelbo", steps=steps),
                    registry.build("metric", "joint-loss")])
    batch = given(batch_size, e.batch_size)
    check_count("batch_size", batch)
    results = [evaluate_metric(m, model, tokens, mc_samples=mc, batch_size=batch, seed=seed) for m in metrics]
    report = {"checkpoint": checkpoint, "split": split, "sequences": int(tokens.shape[0]),
              "tokens_per_sequence": int(tokens.shape[1]), "ell": model.ell, "base": model.base,
              "num_classes": model.num_classes, "mc_samples": mc}
    bytes_per_token = dataset.bytes_per_token(split) if isinstance(dataset, ByteLengths) else None
    report["metrics"] = [result_row(r, bytes_per_token) for r in results]
    if isinstance(dataset, KnownDensity):
        data_lp = dataset.exact_log_prob(tokens)
        check_finite_values(data_lp, "the data set's exact log-probabilities")
        report["data_cross_entropy"] = float(-data_lp.mean() / tokens.shape[1])
    n_units = block_diffusion.block_size_of(model) * (1 if model.grouped else model.ell)  # per block
    blocks = block_diffusion.is_block_model(model)
    if (not own and not model.time_conditioned and n_units <= 8 and (not blocks or tokens.shape[0] <= exact.ROWS)
            and _enumeration_size(model, tokens, n_units) <= EXACT_MAX_LOGITS):
        sub = tokens  # same rows as the bounds, so the two are comparable
        with torch.no_grad():  # the enumeration is a CPU reference over ≤ 8 units: a CPU copy of a small model
            enumerate_ll = exact_block_log_likelihood if blocks else exact.exact_log_likelihood
            ll = enumerate_ll(model if model.device.type == "cpu" else copy.deepcopy(model).cpu(), sub)
        check_finite_values(ll, "exact NLL (enumerated reveal orders)")
        value = float(-ll.mean() / tokens.shape[1])
        report["exact_nll"] = {"value": value, "sequences": int(sub.shape[0]), "kind": "exact",
                               "perplexity": safe_exp(value), "label": "exact NLL (enumerated reveal orders)"}
    return report


#: the exact NLL's enumeration runs only while the logits it computes (2^units forward passes per block, each of
#: rows × L × C) stay under this: a tiny model's reference, not hours of a report (a block model with B·ℓ = 8
#: units per block on a real vocabulary would take 2^8 passes per block; `prime eval` prints the bounds there)
EXACT_MAX_LOGITS = 10**9


def _enumeration_size(model, tokens: torch.Tensor, n_units: int) -> int:
    """The logits the exact enumeration computes: 2^units subsets × blocks × rows × L × C."""
    blocks = model.length // block_diffusion.block_size_of(model)
    return 2**n_units * blocks * tokens.shape[0] * tokens.shape[1] * model.num_classes


def format_report(report: dict) -> str:
    estimates = any(row.get("kind", "bound-estimate") != "exact" for row in report["metrics"])
    draws = f", {report['mc_samples']} Monte-Carlo draws per sequence" if estimates else ""
    lines = [f"{report['checkpoint']}  split={report['split']}  {report['sequences']} sequences × "
             f"{report['tokens_per_sequence']} tokens  (C={report['num_classes']}, ℓ={report['ell']}, "
             f"b={report['base']}{draws})"]
    for row in report["metrics"]:
        lines.append(f"  {row['label']:<46} {figure_text(row)}")
    if "exact_nll" in report:
        x = report["exact_nll"]
        lines.append(f"  {x['label']:<46} {x['value']:.4f} nats/token   {_ppl('=', safe_exp(x['value']))}  "
                     f"(same {x['sequences']} sequences)")
    if "data_cross_entropy" in report:
        v = report["data_cross_entropy"]
        lines.append(f"  {'true data distribution (lower limit)':<46} {v:.4f} nats/token   "
                     f"{_ppl('=', safe_exp(v))}")
    if estimates:
        lines.append("  A NELBO is an upper bound on −log p_θ(x) in expectation; each row shows a Monte-Carlo "
                     "estimate ± its standard error, and \"PPL ≤\" is the one-sided 95 % upper confidence limit "
                     "exp(estimate + 1.645·se). The joint loss is a training objective, not a bound.")
    return "\n".join(lines)
