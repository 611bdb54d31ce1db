"""Zero-shot perplexity of local text files: ``prime eval CKPT --data FILE [FILE …]``, one row per file.

Each file is one document, tokenised with the checkpoint's own tokenizer (the data set's `TextPrompts`) and
wrapped as [BOS] ids [EOS] where the tokenizer has those ids, exactly as training packs documents. The stream is
cut into non-overlapping windows of L tokens; a tail shorter than L is dropped (``tokens`` counts the scored
tokens). Each window is scored with the valid bounds only (DESIGN §2.4): the continuous-time NELBO and the T-step
NELBO (or the backbone's own exact metric, e.g. an AR model's NLL), as nats per token over the windows, so

    PPL ≤ exp(bound / tokens),   BPB ≤ bound / (ln 2 · bytes per token),

printed by the one rule of `prime_core.runs.evaluate` (a Monte-Carlo NELBO as "estimate m ± se (n draws)", its "≤"
figure the 95 % upper confidence limit exp(m + 1.645·se); an exact NLL with "="), with bytes per token = UTF-8 bytes of the file / tokens of its [BOS] ids [EOS] stream (the training convention).
Windows are independent, so the sum over windows bounds −log of the model that generates them independently.
"""

from __future__ import annotations

import math
import os

import torch

from ..fileio import is_url
from ..errors import PrimeError, check_count
from ..interfaces import MetricResult, TextPrompts


def read_text(path: str) -> str:
    """A local UTF-8 regular file's text (at most `MAX_EVAL_TEXT_BYTES`); anything else is a one-line error."""
    from ..fileio import MAX_EVAL_TEXT_BYTES, read_text_bounded

    if is_url(path):
        raise PrimeError(f"--data {path}: give a local UTF-8 text file (a path), not a URL")
    try:
        return read_text_bounded(path, MAX_EVAL_TEXT_BYTES, f"--data {path}")
    except PrimeError as exc:  # say what is allowed
        raise PrimeError(f"{exc} (--data takes local UTF-8 text files, one document each)") from None


def document_windows(text_io: TextPrompts, text: str, length: int) -> tuple[torch.Tensor, float]:
    """([W, L] non-overlapping windows of [BOS] ids [EOS], bytes per token of that stream)."""
    bos = [] if text_io.bos_id is None else [text_io.bos_id]
    eos = [] if text_io.eos_id is None else [text_io.eos_id]
    ids = [*bos, *text_io.encode_text(text), *eos]
    w = len(ids) // length
    return torch.tensor(ids[: w * length], dtype=torch.long).view(w, length), len(text.encode("utf-8")) / len(ids)


def file_row(path: str, windows: torch.Tensor, bytes_per_token: float, results) -> dict:
    """One report row: the file, its scored tokens and each valid bound (`evaluate.result_row`: kind, estimate,
    stderr, draws, ucl95, PPL and BPB figures)."""
    from .evaluate import result_row

    row = {"name": os.path.basename(path), "path": path, "windows": int(windows.shape[0]),
           "tokens": int(windows.numel()), "bytes_per_token": bytes_per_token, "bounds": []}
    for r in results:
        if not r.is_bound:  # only valid bounds become PPL / BPB (DESIGN §1)
            continue
        row["bounds"].append(result_row(r, bytes_per_token))
    return row


def evaluate_files(checkpoint: str, paths: list[str], *, mc_samples: int | None = None, steps: int | None = None,
                   weights: str = "model", seed: int = 0, registry=None, device: str | None = "cpu",
                   batch_size: int | None = None) -> dict:
    """Valid bounds per file (module docstring). Every file is read and tokenised before any model work.
    ``device``: where the model runs (a `prime_core.device` spec; None is auto); ``batch_size``: windows per
    forward pass (default ``eval.batch_size``)."""
    from ..diffusion.block import is_block_model
    from .build import dataset_for_checkpoint, load_model
    from ..cliargs import given
    from .evaluate import evaluate_metric
    from ..plugin.default import get_registry

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
    if is_block_model(model):  # only the block bounds describe a block model (DESIGN §2.8)
        own = None
        metrics = [registry.build("metric", "block-nelbo"), registry.build("metric", "block-tstep-nelbo", steps=steps)]
    else:
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
    from .evaluate import result_row

    n = sum(r["tokens"] for r in rows)
    nbytes = sum(r["tokens"] * r["bytes_per_token"] for r in rows)
    bounds = []
    for k, first in enumerate(rows[0]["bounds"]):  # every row holds the same metrics, in the same order
        parts = [(r["tokens"], r["bounds"][k]) for r in rows]
        errors = [b["stderr"] for _, b in parts]
        stderr = (math.sqrt(sum((t * b["stderr"]) ** 2 for t, b in parts)) / n
                  if all(e is not None for e in errors) else math.nan)
        result = MetricResult(name=first["name"], value=sum(t * b["value"] for t, b in parts) / n, stderr=stderr,
                              unit=first["unit"], is_bound=True,
                              extra={"label": first["label"], "kind": first["kind"],
                                     "draws": sum(b["draws"] or 0 for _, b in parts) or None})
        bounds.append(result_row(result, nbytes / n))
    return {"name": "all files", "files": len(rows), "windows": sum(r["windows"] for r in rows), "tokens": n,
            "bytes_per_token": nbytes / n, "weighting": "token-weighted",
            "note": "the sum of the files' bounds is a bound on the files together", "bounds": bounds}


def format_files_report(report: dict) -> str:
    from .evaluate import figure_text

    lines = [f"{report['checkpoint']}: zero-shot, non-overlapping windows of L = {report['tokens_per_window']} "
             f"tokens, {report['mc_samples']} Monte-Carlo draws per window"]
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
            lines.append(f"    {b['label']:<46} {figure_text(b)}")
    lines.append("  Upper bounds on −log p_θ(x): PPL ≤ exp(bound/token), BPB ≤ bound/(ln 2 · bytes/token); for a "
                 "Monte-Carlo estimate the \"≤\" figure is its one-sided 95 % upper confidence limit "
                 "(estimate + 1.645·se).")
    return "\n".join(lines)
