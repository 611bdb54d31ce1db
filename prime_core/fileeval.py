"""Zero-shot perplexity of local text files: ``prime eval CKPT --data FILE [FILE …]``, one row per file.

Each file is one document, tokenised with the checkpoint's own tokenizer (the data set's `TextPrompts`) and
wrapped as [BOS] ids [EOS] where the tokenizer has those ids, exactly as training packs documents. The stream is
cut into non-overlapping windows of L tokens; a tail shorter than L is dropped (``tokens`` counts the scored
tokens). Each window is scored with the valid bounds only (DESIGN §2.4): the continuous-time NELBO and the T-step
NELBO (or the backbone's own exact metric, e.g. an AR model's NLL), as nats per token over the windows, so

    PPL ≤ exp(bound / tokens),   BPB ≤ bound / (ln 2 · bytes per token),

with bytes per token = UTF-8 bytes of the file / tokens of its [BOS] ids [EOS] stream (the training convention).
Windows are independent, so the sum over windows bounds −log of the model that generates them independently.
"""

from __future__ import annotations

import math
import os

import torch

from .errors import PrimeError, check_count
from .interfaces import TextPrompts


def read_text(path: str) -> str:
    """A local UTF-8 file's text; anything else is a one-line error."""
    if not os.path.isfile(path):
        raise PrimeError(f"--data {path}: no such file (a local UTF-8 text file)")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise PrimeError(f"--data {path}: cannot read it as UTF-8 text ({type(exc).__name__})") from None


def document_windows(text_io: TextPrompts, text: str, length: int) -> tuple[torch.Tensor, float]:
    """([W, L] non-overlapping windows of [BOS] ids [EOS], bytes per token of that stream)."""
    bos = [] if text_io.bos_id is None else [text_io.bos_id]
    eos = [] if text_io.eos_id is None else [text_io.eos_id]
    ids = [*bos, *text_io.encode_text(text), *eos]
    w = len(ids) // length
    return torch.tensor(ids[: w * length], dtype=torch.long).view(w, length), len(text.encode("utf-8")) / len(ids)


def file_row(path: str, windows: torch.Tensor, bytes_per_token: float, results) -> dict:
    """One report row: the file, its scored tokens and each valid bound with PPL ≤ and BPB ≤."""
    row = {"name": os.path.basename(path), "path": path, "windows": int(windows.shape[0]),
           "tokens": int(windows.numel()), "bytes_per_token": bytes_per_token, "bounds": []}
    for r in results:
        if not r.is_bound:  # only valid bounds become PPL / BPB (DESIGN §1)
            continue
        row["bounds"].append({"name": r.name, "label": r.extra.get("label", r.name), "value": r.value,
                              "stderr": r.stderr, "unit": r.unit, "perplexity_upper_bound": math.exp(r.value),
                              "bits_per_byte_upper_bound": r.value / (math.log(2) * bytes_per_token)})
    return row


def evaluate_files(checkpoint: str, paths: list[str], *, mc_samples: int | None = None, steps: int | None = None,
                   weights: str = "model", seed: int = 0, registry=None, device: str | None = "cpu",
                   batch_size: int | None = None) -> dict:
    """Valid bounds per file (module docstring). Every file is read and tokenised before any model work.
    ``device``: where the model runs (a `prime_core.device` spec; None is auto); ``batch_size``: windows per
    forward pass (default ``eval.batch_size``)."""
    from .build import dataset_for_checkpoint, load_model
    from .cliargs import given
    from .evaluate import evaluate_metric
    from .registry import get_registry

    registry = registry or get_registry()
    model, config, ckpt = load_model(checkpoint, registry, weights=weights, device=device)
    dataset = dataset_for_checkpoint(config, ckpt.meta.get("data"), need_data=False, registry=registry)
    if not isinstance(dataset, TextPrompts):
        raise PrimeError(f"--data needs a text checkpoint: its data set {config.data.dataset!r} has no tokenizer")
    mc, steps = given(mc_samples, config.eval.mc_samples), given(steps, config.eval.tstep_steps)
    check_count("mc_samples", mc)
    check_count("steps", steps)
    batch = given(batch_size, config.eval.batch_size)
    check_count("batch_size", batch)
    docs = []
    for path in paths:
        windows, bpt = document_windows(dataset, read_text(path), model.length)
        if windows.shape[0] == 0:
            raise PrimeError(f"--data {path}: shorter than one window of L = {model.length} tokens")
        docs.append((path, windows, bpt))
    own = getattr(model.backbone, "eval_metrics", None)
    metrics = ([registry.build("metric", name) for name in own] if own else
               [registry.build("metric", "nelbo"), registry.build("metric", "tstep-nelbo", steps=steps)])
    rows = [file_row(path, windows, bpt, [evaluate_metric(m, model, windows, mc_samples=mc,
                                                          batch_size=batch, seed=seed)
                                          for m in metrics])
            for path, windows, bpt in docs]
    report = {"checkpoint": checkpoint, "tokens_per_window": model.length, "mc_samples": mc, "ell": model.ell,
              "num_classes": model.num_classes, "files": rows}
    if len(rows) > 1:
        report["combined"] = combined_row(rows)
    return report


def combined_row(rows: list[dict]) -> dict:
    """All files together, token-weighted: per bound, B = Σ_f n_f B_f / Σ_f n_f (n_f scored tokens, B_f nats/token).

    Σ_f n_f B_f is a sum of valid upper bounds on −log p_θ of independent windows, so it bounds −log p_θ of all
    windows together: B is again a valid bound, with PPL ≤ exp(B) and BPB ≤ Σ_f n_f B_f / (ln 2 · Σ_f bytes_f),
    bytes_f = n_f · (bytes per token)_f. The files' Monte-Carlo errors are independent:
    stderr = √(Σ_f (n_f stderr_f)²) / Σ_f n_f."""
    n = sum(r["tokens"] for r in rows)
    nbytes = sum(r["tokens"] * r["bytes_per_token"] for r in rows)
    bounds = []
    for k, first in enumerate(rows[0]["bounds"]):  # every row holds the same metrics, in the same order
        parts = [(r["tokens"], r["bounds"][k]) for r in rows]
        total = sum(t * b["value"] for t, b in parts)
        bounds.append({"name": first["name"], "label": first["label"], "value": total / n,
                       "stderr": math.sqrt(sum((t * b["stderr"]) ** 2 for t, b in parts)) / n,
                       "unit": first["unit"], "perplexity_upper_bound": math.exp(total / n),
                       "bits_per_byte_upper_bound": total / (math.log(2) * nbytes)})
    return {"name": "all files", "files": len(rows), "windows": sum(r["windows"] for r in rows), "tokens": n,
            "bytes_per_token": nbytes / n, "weighting": "token-weighted",
            "note": "the sum of the files' bounds is a bound on the files together", "bounds": bounds}


def format_files_report(report: dict) -> str:
    lines = [f"{report['checkpoint']}: zero-shot, non-overlapping windows of L = {report['tokens_per_window']} "
             f"tokens, {report['mc_samples']} Monte-Carlo draws each"]
    rows = list(report["files"])
    if "combined" in report:
        rows.append(report["combined"])
    for row in rows:
        if row is report.get("combined"):
            lines.append(f"  all {row['files']} files, token-weighted  ({row['tokens']} tokens in {row['windows']} "
                         "windows; a sum of bounds is a bound)")
        else:
            lines.append(f"  {row['name']}  ({row['tokens']} tokens in {row['windows']} windows)")
        for b in row["bounds"]:
            lines.append(f"    {b['label']:<46} {b['value']:9.4f} ± {b['stderr']:.4f} nats/token   "
                         f"PPL ≤ {b['perplexity_upper_bound']:.4f}   BPB ≤ {b['bits_per_byte_upper_bound']:.4f}")
    lines.append("  Valid upper bounds on −log p_θ(x): PPL ≤ exp(bound/token), BPB ≤ bound/(ln 2 · bytes/token).")
    return "\n".join(lines)
