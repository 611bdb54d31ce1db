"""``prime eval``: every valid likelihood bound (named, DESIGN §1) and training objective of a checkpoint on
held-out data — the data set's split, or local text files zero-shot (``--data``)."""

from __future__ import annotations

import argparse
import json

from .. import cliargs
from .options import (add_batch_size, add_checkpoint, add_data_option, add_json, add_seed, add_steps, add_weights,
                      parse_options)


def add_parser(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("eval", help="valid likelihood bounds (≤ PPL) and training objectives on held-out data")
    add_checkpoint(sp)
    sp.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    sp.add_argument("--mc", type=cliargs.count("--mc", 1, cliargs.MAX_MC),
                    help=f"Monte-Carlo samples per sequence, 1 … {cliargs.MAX_MC}")
    add_steps(sp, "T for the T-step NELBO")
    sp.add_argument("--max-sequences", type=cliargs.count("--max-sequences"), help="≥ 1")
    add_batch_size(sp, "sequences per forward pass (default the config's eval.batch_size; lower it when the "
                       "logits [B, L, C] do not fit on the device)")
    sp.add_argument("--data", nargs="+", metavar="FILE", help="zero-shot: local UTF-8 text files, one row each, in "
                    "non-overlapping windows of L tokens (instead of the data set's --split)")
    add_weights(sp)
    add_seed(sp)
    add_json(sp)
    add_data_option(sp)
    cliargs.add_device(sp, what="evaluates (default auto)")
    sp.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from ..runs.evaluate import evaluate_report, format_report

    if args.data:  # zero-shot: local text files, one row each (prime_core.runs.fileeval)
        from ..runs.fileeval import evaluate_files, format_files_report

        report = evaluate_files(args.checkpoint, args.data, mc_samples=args.mc, steps=args.steps,
                                weights=args.weights, seed=args.seed, device=args.device,
                                batch_size=args.batch_size)
        print(json.dumps(report, indent=2, allow_nan=False) if args.json else format_files_report(report))
        return 0
    report = evaluate_report(args.checkpoint, split=args.split, mc_samples=args.mc, steps=args.steps,
                             max_sequences=args.max_sequences, weights=args.weights, seed=args.seed,
                             data_options=parse_options(args.data_option, "--data-option"), device=args.device,
                             batch_size=args.batch_size)
    print(json.dumps(report, indent=2, allow_nan=False) if args.json else format_report(report))
    return 0
