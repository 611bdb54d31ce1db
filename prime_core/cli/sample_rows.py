"""The rows of ``prime sample``: what is fixed in each row (``--fix`` token ids or text prompts), generation in
batches of rows (each printed as it completes), and the text shown for them. Used by `prime_core.cli.sample`."""

from __future__ import annotations

from .. import cliargs
from ..errors import PrimeError


def parse_fixed(text: str | None, length: int, num_classes: int):
    """"i:tok,i:tok" → fixed-token row [L] with −1 elsewhere (positions < L, tokens < C: `cliargs.parse_fixed`)."""
    import torch

    if text is None:
        return None
    row = torch.full((length,), -1, dtype=torch.long)
    for pos, tok in cliargs.parse_fixed(text, length, num_classes):  # its ValueError is bad input: one line, exit 2
        row[pos] = tok
    return row


def sample_rows(args, model, shown, num_samples: int):
    """(fixed rows [n, N] with −1 free, each row's `Prompt` or None): from --prompt/--prompts/--infill (text, with
    the checkpoint's tokenizer; -n rows per prompt, default 1) or --fix (token ids, shared by the -n rows)."""
    import torch

    from ..interfaces import TextPrompts
    from ..sampling.prompts import collect_prompts, fixed_rows

    length = args.length or model.length
    if not (args.prompt or args.prompts or args.infill):
        row = parse_fixed(args.fix, length, model.num_classes)
        fixed = torch.full((num_samples, length), -1, dtype=torch.long) if row is None else row.expand(num_samples, -1)
        return fixed.clone(), [None] * num_samples
    if args.fix:
        raise PrimeError("--fix (token ids) and --prompt/--prompts/--infill (text) cannot be combined; use one")
    if not isinstance(shown, TextPrompts):
        raise PrimeError("--prompt/--prompts/--infill need text: this checkpoint's data set has no tokenizer "
                         "(use --fix position:token for token ids)")
    prompts = collect_prompts(shown, args.prompt, args.prompts, args.infill)
    per = args.num_samples or 1
    if len(prompts) * per > cliargs.MAX_SAMPLES:
        raise PrimeError(f"{len(prompts)} prompts × {per} rows is more than {cliargs.MAX_SAMPLES} samples")
    fixed = fixed_rows(prompts, per, length)
    full = (fixed >= 0).all(-1)
    if bool(full.any()):  # --length ≤ the prompt: nothing would be generated
        p = prompts[int(full.nonzero()[0]) // per]
        raise PrimeError(f"--length {length} ≤ the prompt {p.text[:40]!r} ({len(p.fixed)} tokens): nothing to "
                         f"generate; pass --length above {len(p.fixed)}")
    return fixed, [p for p in prompts for _ in range(per)]


def generate_rows(args, model, sampler, shown, rows, options):
    """Generate in batches of --batch-size rows (same tokens as one batch: row seeds), printing each batch's
    decoded rows as it completes; returns the whole `Generation` and the report's counters and rows."""
    from ..interfaces import TextPrompts
    from ..sampling.ancestral import row_seeds
    from ..sampling.prompts import generate_prompted

    fixed, prompts = rows
    n, length = fixed.shape
    seeds = row_seeds(n, args.seed)
    eos = getattr(shown, "eos_id", None) if args.stop_at_eos else None
    if args.stop_at_eos and eos is None:
        raise PrimeError("--stop-at-eos needs a tokenizer with an end-of-sequence id; this data set has none")
    text = shown if isinstance(shown, TextPrompts) else None
    parts, out_rows = [], []
    batch = sample_batch_size(args, model, n)
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        g = generate_prompted(model, sampler, text, length, seeds=seeds[lo:hi], fixed=fixed[lo:hi],
                              prompts=prompts[lo:hi], stride=args.stride, context=args.context, eos_id=eos, **options)
        parts.append(g)
        _show_batch(args, shown, g, prompts, lo, out_rows)
    g = _concat(parts)
    steps_total = g.steps * g.blocks
    report = {"steps": g.steps, "blocks": g.blocks, "length": length, "nfe_mean": float(g.nfe.float().mean()),
              "idle_steps_mean": float(g.idle_steps.float().mean()),
              "idle_ratio": float(g.idle_steps.float().mean() / steps_total) if steps_total else 0.0,
              "forward_calls": g.forward_calls,
              "decoded": [r["decoded"] for r in out_rows], "rows": out_rows}
    return g, report


def _show_batch(args, shown, g, prompts, lo: int, out_rows: list) -> None:
    """Append one finished batch's rows (rows lo, lo+1, … of the run) to ``out_rows``, printing the first --show
    rows of the run as plain text unless --json."""
    from ..interfaces import TextPrompts
    from ..sampling.prompts import decode_row

    for i in range(len(g.tokens)):
        ids = g.tokens[i].tolist()
        if isinstance(shown, TextPrompts):
            row = decode_row(shown, ids, prompts[lo + i], g.stopped_at[i])
            text, extra = row.decoded, {"prompt": row.prompt, "completion": row.completion}
        else:
            text, extra = shown.decode_samples(g.tokens[i:i + 1])[0], {}
        out_rows.append({**extra, "decoded": text, "nfe": int(g.nfe[i]), "idle_steps": int(g.idle_steps[i]),
                         "stopped_at_eos": g.stopped_at[i]})
        if not args.json and lo + i < args.show:
            print(row_block(lo + i, text, g.stopped_at[i]), flush=True)


def _concat(parts):
    """The batches' `Generation`s as one (rows in order; counters summed where they count calls)."""
    import torch

    from ..sampling.generation import Generation

    first = parts[0]
    return Generation(tokens=torch.cat([p.tokens for p in parts]), nfe=torch.cat([p.nfe for p in parts]),
                      idle_steps=torch.cat([p.idle_steps for p in parts]), steps=first.steps, blocks=first.blocks,
                      forward_calls=sum(p.forward_calls for p in parts),
                      stopped_at=[x for p in parts for x in p.stopped_at],
                      trajectory=None if first.trajectory is None else
                      [torch.cat(s) for s in zip(*(p.trajectory for p in parts))])


def sample_batch_size(args, model, n: int) -> int:
    """--batch-size B, else as many rows as fit --memory-budget (default the checkpoint's
    sample.memory_budget_mib): `prime_core.sampling.batch_budget`."""
    from ..sampling.batch_budget import batch_rows

    return args.batch_size if args.batch_size is not None else batch_rows(model, n, args.budget)


def row_block(index: int, text: str, stopped_at: int | None) -> str:
    """One sampled row as plain output: a header line ``--- sample i ---`` (row i of --json's "rows"; "stopped at
    EOS" when --stop-at-eos cut it), then the text as decoded, newlines and all, so rows never run together."""
    note = "" if stopped_at is None else f" (stopped at EOS, token {stopped_at})"
    return f"--- sample {index}{note} ---\n{text}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def sample_summary(result, report: dict) -> str:
    """The one-line summary of `prime sample`. An event-driven sampler in continuous time (first-hitting without
    --steps) has no step grid (``steps`` = 0): its NFE counts reveal events and it has no idle steps by
    construction, so the line says so instead of "× 0 steps"."""
    head = (f"{_count(len(result.tokens), 'sample')} of {result.tokens.shape[1]} tokens, "
            f"{_count(result.blocks, 'block')}")
    if result.steps == 0:
        return (f"{head} in continuous time (no step grid): NFE {report['nfe_mean']:.1f}/sequence "
                "(one network call per reveal event, so no idle steps)")
    return (f"{head} × {_count(result.steps, 'step')}: NFE {report['nfe_mean']:.1f}/sequence, idle steps "
            f"{report['idle_steps_mean']:.1f} ({100 * report['idle_ratio']:.1f} %)")
