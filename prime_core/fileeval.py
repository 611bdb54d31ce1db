"""Zero-shot perplexity of local text files: ``prime eval CKPT --data FILE [FILE …]``, one row per file.

Each file is one document, tokenised with the checkpoint's own tokenizer (the data set's `TextPrompts`) and
wrapped as [BOS] ids [EOS] where the tokenizer has those ids, exactly as training packs documents. The stream is
cut into non-overlapping windows of L tokens; a tail shorter than L is dropped (``tokens`` counts the scored
tokens). Each window is scored with the valid bounds only (DESIGN §2.4): the continuous-time NELBO and the T-step
NELBO (or the backbone's own exact metric, e.g. an AR model's NLL), as nats per token over the windows, so

    PPL ≤ exp(bound / tokens),   BPB ≤ bound / (ln 2 · bytes per token),

printed by the one rule of `prime_core.evaluate` (a Monte-Carlo NELBO as "estimate m ± se (n draws)", its "≤"
figure the 95 % upper confidence limit exp(m + 1.645·se); an exact NLL with "="), with bytes per token = UTF-8 bytes of the file / tokens of its [BOS] ids [EOS] stream (the training convention).
Windows are independent, so the sum over windows bounds −log of the model that generates them independently.
"""

from __future__ import annotations

import os

import torch

from .fileio import is_url
from .errors import PrimeError, check_count
from .interfaces import TextPrompts


def read_text(path: str) -> str:
    """A local UTF-8 regular file's text (at most `MAX_EVAL_TEXT_BYTES`); anything else is a one-line error."""
    from .fileio import MAX_EVAL_TEXT_BYTES, read_text_bounded

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
                   weights: str = "model", seed: int = 0, registry=None) -> dict:
    """Valid bounds per file (module docstring). Every file is read and tokenised before any model work."""
    from .build import dataset_for_checkpoint, load_model
    from .cliargs import given
    from .evaluate import evaluate_metric
    from .registry import get_registry

    registry = registry or get_registry()
    model, config, ckpt = load_model(checkpoint, registry, weights=weights)
    dataset = dataset_for_checkpoint(config, ckpt.meta.get("data"), need_data=False, registry=registry)
    if not isinstance(dataset, TextPrompts):
        raise PrimeError(f"--data needs a text checkpoint: its data set {config.data.dataset!r} has no tokenizer")
    mc, steps = given(mc_samples, config.eval.mc_samples), given(steps, config.eval.tstep_steps)
    check_count("mc_samples", mc)
    check_count("steps", steps)
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
                                                          batch_size=config.eval.batch_size, seed=seed)
                                          for m in metrics])
            for path, windows, bpt in docs]
    return {"checkpoint": checkpoint, "tokens_per_window": model.length, "mc_samples": mc, "ell": model.ell,
            "num_classes": model.num_classes, "files": rows}


def format_files_report(report: dict) -> str:
    from .evaluate import figure_text

    lines = [f"{report['checkpoint']}: zero-shot, non-overlapping windows of L = {report['tokens_per_window']} "
             f"tokens, {report['mc_samples']} Monte-Carlo draws per window"]
    for row in report["files"]:
        lines.append(f"  {row['name']}  ({row['tokens']} tokens in {row['windows']} windows)")
        for b in row["bounds"]:
            lines.append(f"    {b['label']:<46} {figure_text(b)}")
    lines.append("  Upper bounds on −log p_θ(x): PPL ≤ exp(bound/token), BPB ≤ bound/(ln 2 · bytes/token); for a "
                 "Monte-Carlo estimate the \"≤\" figure is its one-sided 95 % upper confidence limit "
                 "(estimate + 1.645·se).")
    return "\n".join(lines)
