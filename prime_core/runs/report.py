"""Reporting: what a run folder shows people — the loss curve of a training run and ``report.md`` of ``prime run``.

Trainers only train (weights, optimizer state, ``metrics.jsonl``); the commands that run them (``prime train``,
``prime run``) draw from what they wrote, once, on rank 0 (`finish_training`), whichever trainer ran.
"""

from __future__ import annotations

import json
import math
import os

from .compare_table import table_lines
from .evaluate import safe_exp, ucl95
from .rundir import write_text_atomic

LOSS_PNG = "loss.png"
METRICS = "metrics.jsonl"


def finish_training(out_dir: str) -> str | None:
    """Draw ``loss.png`` from ``metrics.jsonl`` in ``out_dir`` (rank 0 only under torchrun); returns its path."""
    if int(os.environ.get("RANK", "0")) != 0 or not os.path.isfile(os.path.join(out_dir, METRICS)):
        return None
    return plot_loss_curve(os.path.join(out_dir, METRICS), os.path.join(out_dir, LOSS_PNG))


def read_metrics(metrics_path: str) -> tuple[list[dict], list[dict]]:
    """(training rows, validation rows) of ``metrics.jsonl``: rows with a ``loss`` and rows with a
    ``valid_metric`` (`prime_core.runs.validation.ValidBound.row`)."""
    rows = [json.loads(line) for line in open(metrics_path, encoding="utf-8") if line.strip()]
    rows = [r for r in rows if isinstance(r, dict) and "step" in r]
    valid = [r for r in rows if "valid_" + str(r.get("valid_metric", "")).replace("-", "_") in r]
    return [r for r in rows if "loss" in r], valid


def plot_loss_curve(metrics_path: str, png_path: str) -> str | None:
    """``loss.png``: the training loss of every logged step of ``metrics.jsonl`` and, when the run validated
    (``train.eval_every``), the validation bound B̂ ≥ −log p_θ(x)/L on the same axes (both nats/token). None
    (after a one-line warning naming ``prime-core[plots]``) without matplotlib, or when nothing was logged."""
    from ..extras import matplotlib_pyplot

    if (plt := matplotlib_pyplot("prime-core[plots]", f"{os.path.basename(png_path)} (loss curve)")) is None:
        return None
    rows, valid = read_metrics(metrics_path)
    if not rows and not valid:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if rows:
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker="." if len(rows) < 20 else None,
                label=f"training loss ({rows[-1].get('loss_name', '')}, objective)")
    if valid:
        metric = valid[-1]["valid_metric"]
        key = "valid_" + metric.replace("-", "_")
        ax.plot([r["step"] for r in valid], [r[key] for r in valid], marker="o",
                label=f"valid {metric} (upper bound on NLL)")
    ax.set_xlabel("step")
    ax.set_ylabel("nats/token")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return png_path


def write_report_markdown(path: str, config, report: dict, png: str | None) -> None:
    """``report.md`` of ``prime run``: the bounds (PPL only for valid bounds), sampling cost, plots, samples."""
    lines = ["# prime run report", "", f"Dataset `{config.data.dataset}`, ℓ = {report['ell']}, b = {report['base']}, "
             f"C = {report['num_classes']}, L = {report['tokens_per_sequence']}; trained {config.train.steps} steps "
             f"in {report['train_seconds']:.0f} s.", "", "| quantity | nats/token | ± | PPL | bits/byte |", "|---|---|---|---|---|"]
    for row in report["metrics"]:
        lines.append(_metric_line(row))
    if "exact_nll" in report:
        x = report["exact_nll"]
        e = safe_exp(x["value"])
        ppl = "> 1e308" if e is None else f"= {e:.3f}"
        lines.append(f"| {x['label']} | {x['value']:.4f} | exact | {ppl} | |")
    if "data_cross_entropy" in report:
        lines.append(f"| true data distribution | {report['data_cross_entropy']:.4f} | exact | | |")
    s = report["sampling"]
    lines += ["", f"Sampling: {s['num_samples']} samples, {s['steps']} steps, NFE {s['nfe_mean']:.1f} per sequence, "
              f"idle-step ratio {100 * s['idle_ratio']:.1f} %, token draw in {_draw_dtype(s)}"
              + _sampler_words(s) + ".", ""]
    if "comparison" in report:  # prime run's [[compare]] models (prime_core.runs.compare)
        lines += table_lines(report["comparison"])
    folder = os.path.dirname(path)
    if os.path.exists(os.path.join(folder, METRICS)):
        lines += _validation_lines(os.path.join(folder, METRICS))
    if os.path.exists(os.path.join(folder, LOSS_PNG)):
        lines += [f"![training loss and validation bound]({LOSS_PNG})", ""]
    if png:
        lines += [f"![samples]({os.path.basename(png)})", ""]
    lines += ["## Samples", "", f"{s['num_samples']} unconditional samples (scores over all of them; the first "
              f"{len(report['samples'])} shown).", ""] + _score_lines(report.get("sample_scores", []))
    lines += [f"- `{_inline(t)}`" for t in report["samples"]]
    if "eos" in report:
        lines += _eos_lines(report["eos"], report.get("completions"))
    if "completions" in report:
        lines += _completion_lines(report["completions"])
    write_text_atomic(path, "\n".join(lines) + "\n")


def _metric_line(row: dict) -> str:
    """One table row by the row's kind (`prime_core.runs.evaluate`): exact "= …", a Monte-Carlo estimate of a bound
    "≤ …" for its 95 % upper confidence limit only (none with one draw), an objective "not a bound"."""
    kind = row.get("kind") or ("bound-estimate" if row["is_bound"] else "objective")
    se, draws = row.get("stderr"), row.get("draws")
    spread = "exact" if kind == "exact" else (f"{se:.4f}" if se is not None else "n/a") + \
        (f" ({draws} draws)" if draws else "")
    if kind == "objective":
        return f"| {row['label']} | {row['value']:.4f} | {spread} | — (not a bound) | — |"
    key, rel = ("perplexity", "=") if kind == "exact" else ("perplexity_upper_bound", "≤")
    bpb_key = "bits_per_byte" if kind == "exact" else "bits_per_byte_upper_bound"
    if kind == "bound-estimate" and row.get("ucl95") is None:
        ppl, bpb = "— (no standard error: no confidence limit)", "—"
    else:
        ppl = (("> 1e308" if rel == "=" else "bound > 1e308 (vacuous)") if row.get(key) is None
               else f"{rel} {row[key]:.3f}")
        ppl += " (exact NLL)" if kind == "exact" else " (95 % UCL)" if kind == "bound-estimate" else ""
        bpb = f"{rel} {row[bpb_key]:.4f}" if row.get(bpb_key) is not None else "—"
    return f"| {row['label']} | {row['value']:.4f} | {spread} | {ppl} | {bpb} |"


def _draw_dtype(sampling: dict) -> str:
    """The token draw's precision: ``draw_dtype``, or ``gumbel_dtype`` in a report.json written before the rename."""
    return sampling.get("draw_dtype", sampling.get("gumbel_dtype", "?"))


def _sampler_words(s: dict) -> str:
    """", sampler `ancestral`, temperature 1, top-p 1" when the report records them (older reports do not)."""
    if "sampler" not in s:
        return ""
    return f", sampler `{s['sampler']}`, temperature {s['temperature']:g}, top-p {s['top_p']:g}"


def _score_lines(scores: list[dict]) -> list[str]:
    """The data set's sample scores (`Presentation.score_samples`), one line each."""
    out = [f"**{sc['label']}: {'n/a' if sc['value'] is None else format(sc['value'], '.3f')}** ({sc['detail']})."
           for sc in scores]
    return out + [""] if out else []


def _completion_lines(completions: dict) -> list[str]:
    """report.md's prompt completions: the scores, then each prompt with what the model wrote after it."""
    lines = ["", "## Prompt completions", "",
             f"Each prompt's tokens are fixed at the start of the sequence and the sampler fills the rest "
             f"(NFE {completions['nfe_mean']:.1f} per sequence, idle-step ratio "
             f"{100 * completions['idle_ratio']:.1f} %). Only the words after the prompt are scored.", ""]
    lines += _score_lines(completions["scores"])
    lines += [f"- `{_inline(r['prompt'])}` → `{_inline(r['completion'])}`"
              + (" ⟨EOS⟩" if r.get("stopped_at_eos") is not None else "") for r in completions["rows"]]
    return lines


def _eos_lines(eos: dict, completions: dict | None) -> list[str]:
    """report.md's count of rows that `prime sample --stop-at-eos` stops, with the first such samples cut there."""
    stopped = f"**Rows that stopped at EOS: {eos['stopped']} of {eos['rows']} unconditional samples"
    if completions is not None and "stopped" in completions:
        stopped += f", {completions['stopped']} of {len(completions['rows'])} prompt completions"
    lines = ["", "## Stopping at EOS", "", stopped + "** (`prime sample --stop-at-eos` cuts a row at its first "
             "generated EOS; prompt completions below are cut so, marked ⟨EOS⟩)."]
    if eos["trimmed"]:
        lines += ["", f"The first {len(eos['trimmed'])} samples that stopped, cut at their EOS:", ""]
        lines += [f"- row {r['row']}, EOS at token {r['stopped_at_eos']}: `{_inline(r['text'])}` ⟨EOS⟩"
                  for r in eos["trimmed"]]
    return lines


def _inline(text: str, limit: int = 300) -> str:
    """Text on one markdown line inside backticks: newlines shown as ⏎, backticks as ', cut at ``limit``."""
    return text[:limit].replace("\n", "⏎").replace("`", "'")


def _validation_lines(metrics_path: str) -> list[str]:
    """report.md's sentence on validation during training: the last and the best bound, named, with PPL ≤."""
    _, valid = read_metrics(metrics_path)
    if not valid:
        return []
    key = "valid_" + valid[-1]["valid_metric"].replace("-", "_")
    best = min(valid, key=lambda r: r[key])
    last = valid[-1]
    if last.get("valid_kind") == "exact":  # an AR model's NLL: exact, no Monte-Carlo draws
        return [f"Validation during training ({last.get('valid_label', last['valid_metric'])} on "
                f"{last['valid_sequences']} fixed valid sequences): {last[key]:.4f} nats/token at step "
                f"{last['step']} (PPL = {_exp(last[key])}); best {best[key]:.4f} at step {best['step']} "
                f"(PPL = {_exp(best[key])}).", ""]
    return [f"Validation during training ({last.get('valid_label', last['valid_metric'])} on "
            f"{last['valid_sequences']} fixed valid sequences, {last['valid_mc_samples']} Monte-Carlo draws each): "
            f"estimate {last[key]:.4f}{_se(last, key)} nats/token at step {last['step']} ({_ucl(last, key)}); best "
            f"{best[key]:.4f}{_se(best, key)} at step {best['step']} ({_ucl(best, key)}).", ""]


def _exp(x: float) -> str:
    e = safe_exp(x)
    return "above 1e308" if e is None else f"{e:.3f}"


def _se(row: dict, key: str) -> str:
    se = row.get(key + "_stderr")
    return f" ± {se:.4f}" if isinstance(se, (int, float)) and math.isfinite(se) else ""


def _ucl(row: dict, key: str) -> str:
    """"PPL ≤ x, 95 % upper confidence limit", or no "≤" where the estimate has no standard error."""
    se = row.get(key + "_stderr")
    if not (isinstance(se, (int, float)) and math.isfinite(se) and se > 0):
        return "no standard error: no confidence limit"
    return f"PPL ≤ {_exp(ucl95(row[key], se))}, 95 % upper confidence limit"
