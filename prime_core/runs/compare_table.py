"""The comparison table of ``prime run`` (report.md and report.json): one row per model, read from its report.

A row's likelihood figure is the first of the model's report figures that is a likelihood: an exact value
("=", e.g. an AR model's NLL or the enumerated NLL of a tiny model) if the report has one, else its first valid
bound ("≤", the 95 % upper confidence limit of a Monte-Carlo bound; docs/concepts.md). A training objective (the
joint loss) is never a row's bound (DESIGN §1).
"""

from __future__ import annotations

import math

from .evaluate import safe_exp

_BOUND_KINDS = ("bound", "bound-estimate")


def headline_bound(report: dict) -> dict | None:
    """{label, kind, relation, nats_per_token, perplexity} of a report's likelihood figure (module docstring);
    ``perplexity`` is None where the bound has no confidence limit or exp overflows. None without any."""
    rows = report.get("metrics", [])
    exact = [r for r in rows if r.get("kind") == "exact"]
    if exact:
        r = exact[0]
        return _figure(r["label"], "exact", r["value"], r.get("perplexity"))
    if "exact_nll" in report:
        x = report["exact_nll"]
        return _figure(x["label"], "exact", x["value"], safe_exp(x["value"]))
    bounds = [r for r in rows if r.get("kind", "bound-estimate" if r.get("is_bound") else "objective")
              in _BOUND_KINDS]
    if not bounds:
        return None
    r = bounds[0]
    return _figure(r["label"], r.get("kind", "bound-estimate"), r["value"], r.get("perplexity_upper_bound"))


def _figure(label: str, kind: str, value: float, ppl: float | None) -> dict:
    return {"label": label, "kind": kind, "relation": "=" if kind == "exact" else "≤", "nats_per_token": value,
            "perplexity": ppl}


def model_row(name: str, report: dict, *, folder: str, overrides=(), main: bool = False) -> dict:
    """The comparison row of a finished model: its bound, the data set's sample scores (e.g. word validity),
    NFE per sequence, sampling tokens/s (num_samples · L / sampling seconds) and training seconds."""
    s = report["sampling"]
    tokens = s["num_samples"] * report["tokens_per_sequence"]
    return {"model": name, "main": main, "status": "ok", "folder": folder, "set": list(overrides),
            "bound": headline_bound(report),
            "scores": {sc["label"]: sc["value"] for sc in report.get("sample_scores", [])},
            "nfe_per_sequence": s["nfe_mean"], "sampling_seconds": s["seconds"],
            "sampling_tokens_per_s": tokens / s["seconds"] if s["seconds"] > 0 else None,
            "train_seconds": report["train_seconds"]}


def failed_row(name: str, error: str, *, folder: str, overrides=(), main: bool = False) -> dict:
    """The row of a model whose run failed: its error line, no figures."""
    return {"model": name, "main": main, "status": "failed", "folder": folder, "set": list(overrides),
            "error": error}


def score_labels(rows: list[dict]) -> list[str]:
    """The sample scores' labels over all rows, in order of first appearance (one column each)."""
    labels: list[str] = []
    for row in rows:
        labels += [label for label in row.get("scores", {}) if label not in labels]
    return labels


def table_lines(comparison: dict) -> list[str]:
    """report.md's section: the table, what each variant overrides, and how the timings were taken."""
    rows = comparison["rows"]
    labels = score_labels(rows)
    lines = ["## Comparison", "",
             f"{len(rows)} models on the same data, tokenizer and budget, trained {comparison['jobs']} at a time "
             f"({comparison['threads_per_job']} torch thread(s) each). Likelihood: \"=\" exact, \"≤\" a valid upper "
             f"bound (its 95 % upper confidence limit for a Monte-Carlo bound); a training objective is never "
             f"shown as one.", "",
             "| model | likelihood (nats/token) | PPL | " + "".join(f"{label} | " for label in labels)
             + "NFE / sequence | sampling tokens/s | training |",
             "|---|---|---|" + "---|" * len(labels) + "---|---|---|"]
    lines += [_row_line(row, labels) for row in rows]
    lines += [""] + [f"- `{row['model']}`: " + (", ".join(f"`{s}`" for s in row["set"]) or "no overrides")
                     + f" ({row['folder']})" for row in rows if not row["main"]]
    grown = [f"`{row['model']}` {row['threads_at_end']}" for row in rows
             if row.get("threads_at_end", 0) > comparison["threads_per_job"]]
    if grown:
        lines += ["", "Torch threads at the end, where a model took over the cores of models that had ended: "
                  + ", ".join(grown) + "."]
    lines += ["", "Sampling tokens/s were measured while the other models ran: compare them within this table "
              "only.", ""]
    return lines


def _row_line(row: dict, labels: list[str]) -> str:
    name = row["model"] + (" (this run)" if row["main"] else "")
    if row["status"] != "ok":
        return f"| {name} | **failed**: {row['error'][:160]} |" + " |" * (len(labels) + 4)
    b = row["bound"]
    if b is None:
        bound, ppl = "— (no likelihood figure)", "—"
    else:
        bound = f"{b['relation']} {b['nats_per_token']:.4f} ({b['label']})"
        ppl = "—" if b["perplexity"] is None else f"{b['relation']} {_ppl(b['perplexity'])}"
    scores = "".join(f"{_num(row['scores'].get(label))} | " for label in labels)
    tps = "—" if row["sampling_tokens_per_s"] is None else f"{row['sampling_tokens_per_s']:.0f}"
    return (f"| {name} | {bound} | {ppl} | {scores}{row['nfe_per_sequence']:.1f} | {tps} | "
            f"{row['train_seconds']:.0f} s |")


def _ppl(x: float) -> str:
    """4 significant digits (5.967, 69.41, 434.4, 7.900), whole numbers from 1,000 on."""
    return f"{x:.{max(0, 3 - math.floor(math.log10(x))) if x > 0 else 3}f}"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def table_text(comparison: dict) -> str:
    """The table as the terminal shows it after the run (the markdown lines, which read fine as text)."""
    return "\n".join(line for line in table_lines(comparison)[4:4 + 2 + len(comparison["rows"])])
