"""``prime sample``: draw samples from a checkpoint — any registered sampler, eager or through a registered
runtime (exported step), token-id constraints or text prompts, N > L tokens in blocks, batches sized to a memory
budget. The rows themselves (constraints, batches, printing) are `prime_core.cli.sample_rows`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .. import cliargs
from ..errors import PrimeError, first_line
from .options import (add_batch_size, add_checkpoint, add_data_option, add_json, add_quiet, add_seed, add_steps,
                      add_weights, parse_options, registry)
from .sample_rows import generate_rows, sample_rows, sample_summary


def add_parser(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("sample", help="draw samples from a checkpoint")
    add_checkpoint(sp)
    sp.add_argument("-n", "--num-samples", type=cliargs.samples, help=f"1 … {cliargs.MAX_SAMPLES}")
    add_steps(sp, "T")
    add_seed(sp)
    sp.add_argument("--sampler")
    sp.add_argument("--temperature", type=cliargs.temperature, help="τ in (0, 100]")
    sp.add_argument("--top-p", type=cliargs.top_p, help="nucleus mass in (0, 1]")
    cliargs.add_renamed_option(sp, "--draw-dtype", "--gumbel-dtype", choices=cliargs.DRAW_DTYPES,
                               help="precision of the token draw (default: the config's sample.draw_dtype)")
    sp.add_argument("--no-cache", action="store_true", help="evaluate every row at every step (baseline)")
    _add_constraints(sp)
    sp.add_argument("--kv-cache", action=argparse.BooleanOptionalAction, default=None,
                    help="block-diffusion models (model.block_size): serve the clean blocks from the backbone's KV "
                    "cache (default: when it has one); --no-kv-cache re-runs them every step (the reference path)")
    sp.add_argument("--stop-at-eos", action="store_true", help="stop a row at the tokenizer's end-of-sequence id "
                    "and cut its text there")
    add_batch_size(sp, "rows generated together (default: as many as fit --memory-budget); each batch is printed "
                       "as it completes (same samples any size)", most=cliargs.MAX_SAMPLES)
    sp.add_argument("--memory-budget", metavar="SIZE", help="per-step working set that sets the batch, e.g. 512M, "
                    "2GiB (default the config's sample.memory_budget_mib, 1024 MiB): all rows at once when they fit")
    sp.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="sampler constructor option (TOML value), e.g. --option warp=1.5 (repeatable)")
    sp.add_argument("--trajectory", action="store_true",
                    help="with --out: also draw the denoising trajectory (trajectory.png) where the data set can")
    add_weights(sp)
    sp.add_argument("--runtime", default="torch",
                    help="torch (eager, default) or a registered runtime, e.g. onnxruntime / tensorrt from "
                         "prime-export: each step as the exported graph, same tokens")
    sp.add_argument("--step-model", help="exported step for --runtime (.onnx, or a TensorRT .engine); "
                    "onnxruntime exports one on the fly when omitted")
    sp.add_argument("--out", help="folder for samples.json (and a PNG where the data set draws one)")
    add_data_option(sp)
    sp.add_argument("--show", type=cliargs.count("--show", 0), default=8, help="samples to print")
    cliargs.add_device(sp, what="samples (default auto; --runtime torch only)")
    add_json(sp)
    add_quiet(sp)
    sp.set_defaults(func=cmd_sample)


def _add_constraints(sp: argparse.ArgumentParser) -> None:
    """What is fixed in the rows (--fix ids, --prompt/--prompts/--infill text) and their length (--length, with
    --stride/--context for N > L)."""
    sp.add_argument("--fix", help="prefix / infill constraints as position:token pairs, e.g. 0:3,1:7")
    sp.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                    help="a text prompt, tokenised with the checkpoint's tokenizer; each decoded row starts with it "
                    "(repeatable: one prompt per -n rows)")
    sp.add_argument("--prompts", metavar="FILE", help="a local UTF-8 file of prompts, one per line")
    sp.add_argument("--infill", action="append", default=[], metavar="TEMPLATE",
                    help='an infill template: text with [MASK:k] for k free tokens, e.g. "She said [MASK:12] and left"')
    sp.add_argument("--length", type=cliargs.count("--length", 1, 2**20),
                    help="N tokens per sample (default L); N > L: semi-autoregressive blocks (--stride, --context)")
    sp.add_argument("--stride", type=cliargs.count("--stride"), help="new tokens per block after the first "
                    "(default L // 2)")
    sp.add_argument("--context", type=cliargs.count("--context", 0), help="generated tokens kept fixed as the "
                    "next block's prefix (default L − stride)")


def cmd_sample(args) -> int:
    import torch

    from ..diffusion.block import block_size_of, is_block_model
    from ..runs.build import load_model
    from ..runs.rundir import check_writable, local_out_dir
    from ..sampling.batch_budget import parse_budget

    args.budget = None if args.memory_budget is None else parse_budget(args.memory_budget)  # bad size: refused now
    out = None if args.out is None else local_out_dir(args.out)  # before any work: a URL or a file is refused
    if out is not None:
        check_writable(out)  # an unwritable --out is one line now, not an errno after sampling
    if args.runtime != "torch" and args.device is not None:
        raise PrimeError(f"--device {args.device} places the eager model (--runtime torch); --runtime "
                         f"{args.runtime} runs the exported step where that runtime runs it: leave --device out")
    device = args.device if args.runtime == "torch" else "cpu"  # None: auto
    model, config, ckpt = load_model(args.checkpoint, weights=args.weights, device=device)
    _check_window_flags(args, model.length)
    s = config.sample
    sampler = _sampler(args, model, config, ckpt)
    draw_dtype = cliargs.given(args.draw_dtype, s.draw_dtype)
    texts = bool(args.prompt or args.prompts or args.infill)
    if texts and args.runtime != "torch" and not args.quiet:  # docs/export.md: where runtime parity holds
        print(f"prime: note: --runtime {args.runtime} does not condition a completion's first token on starting a "
              "new word (the eager samplers do); the text join still never glues words", file=sys.stderr)
    # the data set's presentation decodes and draws; if --out needs it and it cannot be built, fail before sampling
    shown = _sample_dataset(config, ckpt.meta.get("data"), required=out is not None or texts or args.stop_at_eos,
                            locations=parse_options(args.data_option, "--data-option"))
    rows = sample_rows(args, model, shown, cliargs.given(args.num_samples, s.num_samples))
    args.budget = args.budget or s.memory_budget_mib * 2**20
    # an event-driven sampler (first-hitting) without --steps runs in continuous time, not on sample.steps' grid
    steps = None if getattr(sampler, "event_driven", False) and args.steps is None else \
        cliargs.given(args.steps, s.steps)
    args.block_size = block_size_of(model) if is_block_model(model) else None
    _note_blocks(args, model.length, steps, len(rows[0]))
    options = dict(steps=steps, temperature=cliargs.given(args.temperature, s.temperature),
                   top_p=cliargs.given(args.top_p, s.top_p), draw_dtype=getattr(torch, draw_dtype),
                   cache=not args.no_cache, progress=not args.quiet)
    if args.kv_cache is not None:
        options["kv_cache"] = args.kv_cache
    if args.trajectory:
        options["return_trajectory"] = True
    result, report = generate_rows(args, model, sampler, shown, rows, options)
    report.update(draw_dtype=draw_dtype, tokens=result.tokens.tolist())
    if out is not None:
        _write_out(args, out, model, shown, result, report)
    if args.json:
        print(json.dumps(report))
        return 0
    print(sample_summary(result, report))
    for key in ("png", "trajectory_png"):
        if report.get(key):
            print(f"wrote {report[key]}")
    return 0


def _sampler(args, model, config, ckpt):
    """The sampler --sampler/--option (else the config's sample section) names, or --runtime's sampler driving the
    exported step; contradicting flags are refused here, before any data is read."""
    from ..diffusion.block import is_block_model

    s = config.sample
    name = cliargs.given(args.sampler, s.sampler)
    options = {**(s.options if name == s.sampler else {}), **parse_options(args.option)}
    sampler = registry().build("sampler", name, **options)
    if args.step_model is not None and args.runtime == "torch":
        raise PrimeError("--step-model is the exported step of --runtime onnxruntime or tensorrt; it does nothing "
                         "with --runtime torch")
    if args.trajectory and not args.out:
        raise PrimeError("--trajectory draws trajectory.png into the --out folder: pass --out DIR")
    if args.runtime != "torch" and is_block_model(model):
        raise PrimeError(f"--runtime {args.runtime} runs an exported step of a one-block model; this block-diffusion "
                         "model (model.block_size) samples with --runtime torch only")
    if args.runtime == "torch":
        return sampler
    # a registered runtime (prime-export registers onnxruntime and tensorrt)
    if name != "ancestral" or options:
        raise PrimeError(f"--runtime {args.runtime} drives the ancestral sampler without options only, "
                         f"not {name!r} {options or ''}".rstrip())
    return _runtime(args.runtime).sampler(model, config, args.checkpoint, step_model=args.step_model,
                                          draw_dtype=args.draw_dtype, ckpt_meta=ckpt.meta,
                                          top_p=cliargs.given(args.top_p, s.top_p))


def _write_out(args, out: str, model, shown, result, report: dict) -> None:
    """--out: samples.json (the report), samples.jsonl (one row a line), samples.png and, with --trajectory,
    trajectory.png where the data set draws them; each file written atomically."""
    from ..runs.rundir import write_text_atomic

    os.makedirs(out, exist_ok=True)
    write_text_atomic(os.path.join(out, "samples.json"), json.dumps(report))
    write_text_atomic(os.path.join(out, "samples.jsonl"), "".join(json.dumps(r) + "\n" for r in report["rows"]))
    png = shown.render(result.tokens, os.path.join(out, "samples.png")) if result.tokens.shape[1] == model.length \
        else None
    if png:
        report["png"] = png
    if args.trajectory:
        traj = shown.render_trajectory(result.trajectory, model.map, os.path.join(out, "trajectory.png"))
        if traj:
            report["trajectory_png"] = traj


def _check_window_flags(args, window: int) -> None:
    """--stride and --context shape the blocks of a sequence longer than the model's L tokens (--length N > L);
    with one block they would do nothing, so they are refused rather than ignored."""
    length = args.length or window
    for flag, value in (("--stride", args.stride), ("--context", args.context)):
        if value is not None and length <= window:
            raise PrimeError(f"{flag} sets the blocks of --length N > L = {window}; this run generates {length} "
                             f"tokens in one block: pass --length above {window} or leave {flag} out")


def _note_blocks(args, window: int, steps: int | None, rows: int) -> None:
    """--length N > L: say up front how much work that is (K blocks of L tokens, each a full T-step run of the
    sampler; a progress bar over the blocks follows), since N up to 2²⁰ is allowed and may take minutes."""
    from ..sampling.semiar import window_plan

    if not args.length or args.length <= window or args.quiet:
        return
    if getattr(args, "block_size", None):  # a block-diffusion model: K blocks of B, no windows
        print(f"prime: note: {args.length} tokens = {-(-args.length // args.block_size)} blocks of B = "
              f"{args.block_size} tokens, each a sampler run, for {rows} row(s)", file=sys.stderr)
        return
    blocks = len(window_plan(args.length, window, args.stride, args.context))
    per_block = f"{steps} steps" if steps is not None else "up to L·ℓ reveal events"
    print(f"prime: note: {args.length} tokens = {blocks} blocks of L = {window} tokens, each a sampler run of "
          f"{per_block}, for {rows} row(s)", file=sys.stderr)


def _runtime(name: str):
    """The registered runtime ``name`` (``torch``, eager, is built in and never looked up)."""
    reg = registry()
    if name not in reg.names("runtime"):
        known = ", ".join(["torch", *reg.names("runtime")])
        exported = name in ("onnxruntime", "tensorrt")
        hint = " (pip install prime-export for onnxruntime and tensorrt)" if exported else ""
        raise PrimeError(f"unknown --runtime {name!r}; installed runtimes: {known}{hint}")
    return reg.build("runtime", name)


def _sample_dataset(config, data_meta, *, required: bool, locations: dict):
    """How the checkpoint's samples are shown (its data set's `Presentation`: a stored tokenizer decodes, images
    are drawn). Only --out needs the data set; without --out one that cannot be built here (an image folder on
    another machine, a location not passed with --data-option, no stored tokenizer) shows samples as ids."""
    import torch

    from ..interfaces import presentation
    from ..runs.build import check_location_keys, dataset_for_checkpoint

    if locations:  # the user named locations: one the data set does not take is refused, never noted
        check_location_keys(registry().get("dataset", config.data.dataset).obj, locations)
    try:
        shown = presentation(dataset_for_checkpoint(config, data_meta, locations=locations, need_data=False))
        # Decoding zero rows fails here, before --out is created, if the data set cannot decode at all.
        shown.decode_samples(torch.zeros((0, config.model.length), dtype=torch.long))
        return shown
    except (PrimeError, FileNotFoundError) as exc:
        if required:
            raise
        print(f"prime: note: samples shown as token ids ({first_line(exc)})", file=sys.stderr)
        return presentation(None)  # token ids
