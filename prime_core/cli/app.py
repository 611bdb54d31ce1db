"""The ``prime`` command line: plugins, train, run, sample, eval, idle-steps — and every command that installed
distributions add through the ``register_commands`` hook (`prime_core.plugin.commands`: export, images, text,
conformance, …).

argparse, not click: every program of the project (``prime``, ``python -m export.onnx``, the plugins' commands)
shares one parser class with the one-line error promise (`prime_core.cliargs.Parser`), it costs no dependency,
and plugins receive the sub-command group exactly as llm's plugins receive its click group.

User errors (bad config, unknown component, bad checkpoint, ids out of range) print one line to stderr and exit
with code 2, without a traceback (``--debug`` or ``PRIME_DEBUG=1`` adds it); exit 1 means a bug.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .. import cliargs
from ..errors import PrimeError, first_line

EXIT_USAGE = cliargs.EXIT_USAGE
MAX_IDLE_UNITS = 2**24


def _registry():
    from ..plugin.default import get_registry

    return get_registry()


# ------------------------------------------------------------------------------------------------ plugins
def cmd_plugins(args) -> int:
    """List plugins and their components; exit 1 when any listed plugin is broken (the rest still listed)."""
    reg = _registry()
    debug = cliargs.debug_enabled(args)
    if args.hook is not None and args.hook not in _hook_names():
        raise PrimeError(f"--hook {args.hook!r} is not a prime hook; hooks: {', '.join(_hook_names())}")
    rows = [info.to_json(debug) for info in reg.plugins.values() if args.all or not info.builtin]
    if args.hook:
        rows = [r for r in rows if args.hook in r["hooks"]]
    broken = 1 if any(r["error"] for r in rows) else 0
    if args.json:
        print(json.dumps(rows, indent=2))
        return broken
    if not rows:
        print("no plugins installed (use --all to include the built-ins)")
    for r in rows:
        status = f"  ERROR: {r['error']}" if r["error"] else ""
        print(f"{r['name']}  ({r['distribution']} {r['version']}){status}")
        for kind, names in sorted(r["components"].items()):
            print(f"    {kind:<10} {', '.join(names)}")
        if debug and r.get("traceback"):
            print("    " + r["traceback"].rstrip().replace("\n", "\n    "))
    return broken


def _hook_names() -> list[str]:
    """The hooks plugins can implement (`prime_core.plugin.hookspecs`), in the order they are declared."""
    from ..plugin import hookspecs

    return [name for name in vars(hookspecs) if name.startswith("register_")]


# ------------------------------------------------------------------------------------------------ train
def _check_run_flags(args) -> None:
    """``--resume`` continues the folder's run; ``--force`` replaces it: together they contradict each other."""
    if args.resume and args.force:
        raise PrimeError("--resume continues the folder's run and --force starts it over: pass one of them")


def cmd_train(args) -> int:
    from ..runs.config import load_config
    from ..runs.report import finish_training
    from ..runs.rundir import claim, local_out_dir

    from ..device import with_train_device

    _check_run_flags(args)
    config = with_train_device(load_config(args.config, args.set), args.device)
    trainer = _registry().build("trainer", config.train.trainer)
    out = local_out_dir(args.out)
    # held until loss.png is drawn; under torchrun the trainer takes the lock on rank 0 (see prime_core.runs.rundir)
    with claim(out, lock="WORLD_SIZE" not in os.environ):
        url = trainer.fit(config, out_dir=out, resume=args.resume, progress=not args.quiet, force=args.force)
        finish_training(out)
    if os.environ.get("RANK", "0") == "0":  # under torchrun every process returns here; rank 0 speaks
        print(f"checkpoint: {url}")
    return 0


def cmd_run(args) -> int:
    from ..runs.config import load_config
    from ..device import with_train_device
    from ..runs.pipeline import run_pipeline

    _check_run_flags(args)
    run_pipeline(with_train_device(load_config(args.config, args.set), args.device), args.out, resume=args.resume, force=args.force,
                 progress=not args.quiet)
    return 0


# ------------------------------------------------------------------------------------------------ sample
def _parse_fixed(text: str | None, length: int, num_classes: int):
    """"i:tok,i:tok" → fixed-token row [L] with −1 elsewhere (positions < L, tokens < C: `cliargs.parse_fixed`)."""
    import torch

    from ..cliargs import parse_fixed

    if text is None:
        return None
    row = torch.full((length,), -1, dtype=torch.long)
    for pos, tok in parse_fixed(text, length, num_classes):  # its ValueError is bad input: one line, exit 2
        row[pos] = tok
    return row


#: An example of each KEY=VALUE flag, for the message that refuses a malformed one.
_OPTION_EXAMPLES = {"--option": "--option warp=1.5", "--data-option": "--data-option source=PATH"}


def _parse_options(items: list[str], flag: str = "--option") -> dict:
    """["key=value", …] (values in TOML syntax, bare words as strings) → sampler constructor options or data
    locations; a malformed item is refused naming ``flag`` and its own form (not ``--set``'s section.key=value)."""
    from ..runs.config import parse_override

    out = {}
    for text in items or []:
        key = text.partition("=")[0].strip()
        if "=" not in text or not key or not all(k.strip() for k in key.split(".")):
            raise PrimeError(f"{flag} {text!r} must look like KEY=VALUE, e.g. {_OPTION_EXAMPLES[flag]}")
        keys, value = parse_override(f"option.{text}")
        out[".".join(keys[1:])] = value
    return out


def cmd_sample(args) -> int:
    import torch

    from ..diffusion.block import block_size_of, is_block_model
    from ..runs.build import load_model
    from ..runs.rundir import check_writable, local_out_dir, write_text_atomic

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
    name = cliargs.given(args.sampler, s.sampler)
    options = {**(s.options if name == s.sampler else {}), **_parse_options(args.option)}
    sampler = _registry().build("sampler", name, **options)
    if args.step_model is not None and args.runtime == "torch":
        raise PrimeError("--step-model is the exported step of --runtime onnxruntime or tensorrt; it does nothing "
                         "with --runtime torch")
    if args.trajectory and not args.out:
        raise PrimeError("--trajectory draws trajectory.png into the --out folder: pass --out DIR")
    if args.runtime != "torch" and is_block_model(model):
        raise PrimeError(f"--runtime {args.runtime} runs an exported step of a one-block model; this block-diffusion "
                         "model (model.block_size) samples with --runtime torch only")
    if args.runtime != "torch":  # a registered runtime (prime-export registers onnxruntime and tensorrt)
        if name != "ancestral" or options:
            raise PrimeError(f"--runtime {args.runtime} drives the ancestral sampler without options only, "
                             f"not {name!r} {options or ''}".rstrip())
        runtime = _runtime(args.runtime)
        sampler = runtime.sampler(model, config, args.checkpoint, step_model=args.step_model,
                                  gumbel_dtype=args.draw_dtype, ckpt_meta=ckpt.meta,
                                  top_p=cliargs.given(args.top_p, s.top_p))
    gumbel_dtype = cliargs.given(args.draw_dtype, s.draw_dtype)
    texts = bool(args.prompt or args.prompts or args.infill)
    if texts and args.runtime != "torch" and not args.quiet:  # docs/export.md: where runtime parity holds
        print(f"prime: note: --runtime {args.runtime} does not condition a completion's first token on starting a "
              "new word (the eager samplers do); the text join still never glues words", file=sys.stderr)
    # the data set's presentation decodes and draws; if --out needs it and it cannot be built, fail before sampling
    shown = _sample_dataset(config, ckpt.meta.get("data"), required=out is not None or texts or args.stop_at_eos,
                            locations=_parse_options(args.data_option, "--data-option"))
    rows = _sample_rows(args, model, shown, cliargs.given(args.num_samples, s.num_samples))
    args.budget = args.budget or s.memory_budget_mib * 2**20
    # an event-driven sampler (first-hitting) without --steps runs in continuous time, not on sample.steps' grid
    steps = None if getattr(sampler, "event_driven", False) and args.steps is None else \
        cliargs.given(args.steps, s.steps)
    args.block_size = block_size_of(model) if is_block_model(model) else None
    _note_blocks(args, model.length, steps, len(rows[0]))
    options = dict(steps=steps, temperature=cliargs.given(args.temperature, s.temperature),
                   top_p=cliargs.given(args.top_p, s.top_p), gumbel_dtype=getattr(torch, gumbel_dtype),
                   cache=not args.no_cache, progress=not args.quiet)
    if args.kv_cache is not None:
        options["kv_cache"] = args.kv_cache
    if args.trajectory:
        options["return_trajectory"] = True
    result, report = _generate_rows(args, model, sampler, shown, rows, options)
    report.update(gumbel_dtype=gumbel_dtype, tokens=result.tokens.tolist())
    if out is not None:
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
    if args.json:
        print(json.dumps(report))
        return 0
    print(sample_summary(result, report))
    if report.get("png"):
        print(f"wrote {report['png']}")
    if report.get("trajectory_png"):
        print(f"wrote {report['trajectory_png']}")
    return 0


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


def _sample_rows(args, model, shown, num_samples: int):
    """(fixed rows [n, N] with −1 free, each row's `Prompt` or None): from --prompt/--prompts/--infill (text, with
    the checkpoint's tokenizer; -n rows per prompt, default 1) or --fix (token ids, shared by the -n rows)."""
    import torch

    from ..interfaces import TextPrompts
    from ..sampling.prompts import collect_prompts, fixed_rows

    length = args.length or model.length
    if not (args.prompt or args.prompts or args.infill):
        row = _parse_fixed(args.fix, length, model.num_classes)
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


def _generate_rows(args, model, sampler, shown, rows, options):
    """Generate in batches of --batch-size rows (same tokens as one batch: row seeds), printing each batch's
    decoded rows as it completes; returns the whole `Generation` and the report's counters and rows."""
    import torch

    from ..interfaces import TextPrompts
    from ..sampling.prompts import decode_row, generate_prompted
    from ..sampling.ancestral import row_seeds
    from ..sampling.semiar import Generation

    fixed, prompts = rows
    n, length = fixed.shape
    seeds = row_seeds(n, args.seed)
    eos = getattr(shown, "eos_id", None) if args.stop_at_eos else None
    if args.stop_at_eos and eos is None:
        raise PrimeError("--stop-at-eos needs a tokenizer with an end-of-sequence id; this data set has none")
    parts, out_rows, printed = [], [], 0
    batch = sample_batch_size(args, model, n)
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        g = generate_prompted(model, sampler, shown if isinstance(shown, TextPrompts) else None, length,
                              seeds=seeds[lo:hi], fixed=fixed[lo:hi], prompts=prompts[lo:hi], stride=args.stride,
                              context=args.context, eos_id=eos, **options)
        parts.append(g)
        for i in range(hi - lo):
            ids = g.tokens[i].tolist()
            if isinstance(shown, TextPrompts):
                row = decode_row(shown, ids, prompts[lo + i], g.stopped_at[i])
                text, extra = row.decoded, {"prompt": row.prompt, "completion": row.completion}
            else:
                text, extra = shown.decode_samples(g.tokens[i:i + 1])[0], {}
            out_rows.append({**extra, "decoded": text, "nfe": int(g.nfe[i]), "idle_steps": int(g.idle_steps[i]),
                             "stopped_at_eos": g.stopped_at[i]})
            if not args.json and printed < args.show:
                print(row_block(lo + i, text, g.stopped_at[i]), flush=True)
                printed += 1
    g = Generation(tokens=torch.cat([p.tokens for p in parts]), nfe=torch.cat([p.nfe for p in parts]),
                   idle_steps=torch.cat([p.idle_steps for p in parts]), steps=parts[0].steps,
                   blocks=parts[0].blocks, forward_calls=sum(p.forward_calls for p in parts),
                   stopped_at=[x for p in parts for x in p.stopped_at],
                   trajectory=None if parts[0].trajectory is None else
                   [torch.cat(s) for s in zip(*(p.trajectory for p in parts))])
    steps_total = g.steps * g.blocks
    report = {"steps": g.steps, "blocks": g.blocks, "length": length, "nfe_mean": float(g.nfe.float().mean()),
              "idle_steps_mean": float(g.idle_steps.float().mean()),
              "idle_ratio": float(g.idle_steps.float().mean() / steps_total) if steps_total else 0.0,
              "forward_calls": g.forward_calls,
              "decoded": [r["decoded"] for r in out_rows], "rows": out_rows}
    return g, report


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


def _runtime(name: str):
    """The registered runtime ``name`` (``torch``, eager, is built in and never looked up)."""
    registry = _registry()
    if name not in registry.names("runtime"):
        known = ", ".join(["torch", *registry.names("runtime")])
        exported = name in ("onnxruntime", "tensorrt")
        hint = " (pip install prime-export for onnxruntime and tensorrt)" if exported else ""
        raise PrimeError(f"unknown --runtime {name!r}; installed runtimes: {known}{hint}")
    return registry.build("runtime", name)


def _sample_dataset(config, data_meta, *, required: bool, locations: dict):
    """How the checkpoint's samples are shown (its data set's `Presentation`: a stored tokenizer decodes, images
    are drawn). Only --out needs the data set; without --out one that cannot be built here (an image folder on
    another machine, a location not passed with --data-option, no stored tokenizer) shows samples as ids."""
    import torch

    from ..runs.build import check_location_keys, dataset_for_checkpoint
    from ..interfaces import presentation

    if locations:  # the user named locations: one the data set does not take is refused, never noted
        check_location_keys(_registry().get("dataset", config.data.dataset).obj, locations)
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


# ------------------------------------------------------------------------------------------------ eval
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
                             data_options=_parse_options(args.data_option, "--data-option"), device=args.device,
                             batch_size=args.batch_size)
    print(json.dumps(report, indent=2, allow_nan=False) if args.json else format_report(report))
    return 0


# ------------------------------------------------------------------------------------------------ idle-steps
def cmd_idle_steps(args) -> int:
    from ..diffusion.idle import idle_report

    if args.length * args.ell > MAX_IDLE_UNITS:  # the simulation draws L·ℓ reveal steps per run
        raise PrimeError(f"--length × --ell = {args.length * args.ell} sub-tokens is more than the simulation "
                         f"handles ({MAX_IDLE_UNITS}); use a smaller L or ℓ")
    schedule = _registry().build("schedule", args.schedule)
    rep = idle_report(schedule, args.schedule, args.length, args.ell, args.steps, args.runs, args.seed)
    if args.json:
        print(json.dumps(rep.to_json()))
        return 0
    print(f"L={rep.length} ℓ={rep.ell} T={rep.steps} schedule={rep.schedule} (N = L·ℓ = {rep.length * rep.ell})")
    print(f"expected idle steps  {rep.expected_idle_steps:10.3f}   ratio {100 * rep.expected_idle_ratio:6.2f} %")
    print(f"simulated idle steps {rep.simulated_idle_steps:10.3f}   ratio {100 * rep.simulated_idle_ratio:6.2f} %"
          f"   (± {rep.simulated_stderr:.3f}, {rep.runs} runs)")
    return 0


# ------------------------------------------------------------------------------------------------ parser
def _add_run_options(sp, out: str, what: str) -> None:
    """The options `prime train` and `prime run` share, defined once: --config, --set, --out, --resume, --force,
    --quiet, --device."""
    sp.add_argument("--config", help="TOML file (path or fsspec URL) or a shipped config's name (prime config list)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set model.ell=4 (repeatable)")
    sp.add_argument("--out", default=out, help="output folder (checkpoint, metrics, plots, report)")
    sp.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")
    sp.add_argument("--force", action="store_true", help="start over even if a checkpoint exists")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    cliargs.add_device(sp, what=f"{what} (sets train.options.device; default: the config's, else auto)")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line: the core's commands, then the plugins' (the invoked one is loaded for real)."""
    p = cliargs.Parser(prog="prime", description="Partial-masking discrete diffusion (MDM-Prime).")
    p.add_argument("--debug", action="store_true", help=cliargs.DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("plugins", help="list installed plugins and their components")
    sp.add_argument("--all", action="store_true", help="include the core's built-ins")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--hook", help="only plugins implementing this hook, e.g. register_schedules")
    sp.set_defaults(func=cmd_plugins)

    sp = sub.add_parser("train", help="train a model from a TOML config")
    _add_run_options(sp, "runs/default", what="trains")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("run", help="the main job: train, sample, evaluate and write a report")
    _add_run_options(sp, "runs/main", what="trains, samples and evaluates")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("sample", help="draw samples from a checkpoint")
    sp.add_argument("checkpoint")
    sp.add_argument("-n", "--num-samples", type=cliargs.samples, help=f"1 … {cliargs.MAX_SAMPLES}")
    sp.add_argument("--steps", type=cliargs.steps, help=f"T, 1 … {cliargs.MAX_STEPS}")
    sp.add_argument("--seed", type=cliargs.seed, default=0, help=f"0 … {cliargs.MAX_SEED}")
    sp.add_argument("--sampler")
    sp.add_argument("--temperature", type=cliargs.temperature, help="τ in (0, 100]")
    sp.add_argument("--top-p", type=cliargs.top_p, help="nucleus mass in (0, 1]")
    cliargs.add_renamed_option(sp, "--draw-dtype", "--gumbel-dtype", choices=cliargs.DRAW_DTYPES,
                               help="precision of the token draw (default: the config's sample.draw_dtype)")
    sp.add_argument("--no-cache", action="store_true", help="evaluate every row at every step (baseline)")
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
    sp.add_argument("--kv-cache", action=argparse.BooleanOptionalAction, default=None,
                    help="block-diffusion models (model.block_size): serve the clean blocks from the backbone's KV "
                    "cache (default: when it has one); --no-kv-cache re-runs them every step (the reference path)")
    sp.add_argument("--stop-at-eos", action="store_true", help="stop a row at the tokenizer's end-of-sequence id "
                    "and cut its text there")
    sp.add_argument("--batch-size", type=cliargs.count("--batch-size", 1, cliargs.MAX_SAMPLES),
                    help="rows generated together (default: as many as fit --memory-budget); each batch is printed "
                    "as it completes (same samples any size)")
    sp.add_argument("--memory-budget", metavar="SIZE", help="per-step working set that sets the batch, e.g. 512M, "
                    "2GiB (default the config's sample.memory_budget_mib, 1024 MiB): all rows at once when they fit")
    sp.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="sampler constructor option (TOML value), e.g. --option warp=1.5 (repeatable)")
    sp.add_argument("--trajectory", action="store_true",
                    help="with --out: also draw the denoising trajectory (trajectory.png) where the data set can")
    sp.add_argument("--weights", default="model", choices=["model", "ema"])
    sp.add_argument("--runtime", default="torch",
                    help="torch (eager, default) or a registered runtime, e.g. onnxruntime / tensorrt from "
                         "prime-export: each step as the exported graph, same tokens")
    sp.add_argument("--step-model", help="exported step for --runtime (.onnx, or a TensorRT .engine); "
                    "onnxruntime exports one on the fly when omitted")
    sp.add_argument("--out", help="folder for samples.json (and a PNG where the data set draws one)")
    _add_data_option(sp)
    sp.add_argument("--show", type=cliargs.count("--show", 0), default=8, help="samples to print")
    cliargs.add_device(sp, what="samples (default auto; --runtime torch only)")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_sample)

    sp = sub.add_parser("eval", help="valid likelihood bounds (≤ PPL) and training objectives on held-out data")
    sp.add_argument("checkpoint")
    sp.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    sp.add_argument("--mc", type=cliargs.count("--mc", 1, cliargs.MAX_MC),
                    help=f"Monte-Carlo samples per sequence, 1 … {cliargs.MAX_MC}")
    sp.add_argument("--steps", type=cliargs.steps, help=f"T for the T-step NELBO, 1 … {cliargs.MAX_STEPS}")
    sp.add_argument("--max-sequences", type=cliargs.count("--max-sequences"), help="≥ 1")
    sp.add_argument("--batch-size", type=cliargs.count("--batch-size"),
                    help="sequences per forward pass (default the config's eval.batch_size; lower it when the "
                         "logits [B, L, C] do not fit on the device)")
    sp.add_argument("--data", nargs="+", metavar="FILE", help="zero-shot: local UTF-8 text files, one row each, in "
                    "non-overlapping windows of L tokens (instead of the data set's --split)")
    sp.add_argument("--weights", default="model", choices=["model", "ema"])
    sp.add_argument("--seed", type=cliargs.seed, default=0, help=f"0 … {cliargs.MAX_SEED}")
    sp.add_argument("--json", action="store_true")
    _add_data_option(sp)
    cliargs.add_device(sp, what="evaluates (default auto)")
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("idle-steps", help="expected and simulated idle steps of the T-step sampler")
    sp.add_argument("--length", type=cliargs.count("--length"), required=True, help="L, tokens per sequence")
    sp.add_argument("--ell", type=cliargs.count("--ell", 1, 64), required=True, help="ℓ, sub-tokens per token")
    sp.add_argument("--steps", type=cliargs.steps, required=True, help=f"T, sampling steps, 1 … {cliargs.MAX_STEPS}")
    sp.add_argument("--schedule", default="linear")
    sp.add_argument("--runs", type=cliargs.count("--runs", 1, 100_000), default=100,
                    help="simulated sampling runs, 1 … 100000")
    sp.add_argument("--seed", type=cliargs.seed, default=0)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_idle_steps)

    from ..plugin.shipped_configs import add_config_parser  # prime config list / show NAME

    add_config_parser(sub)

    from ..plugin.commands import attach

    attach(sub, sys.argv[1:] if argv is None else list(argv))  # plugin commands (register_commands hook)
    _add_debug(sub)
    return p


def _add_debug(sub: argparse._SubParsersAction) -> None:
    """``prime CMD [SUB] … --debug`` too; SUPPRESS keeps a ``prime --debug CMD`` intact."""
    for sp in sub.choices.values():
        if not any("--debug" in a.option_strings for a in sp._actions):
            sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=cliargs.DEBUG_HELP)
        for action in sp._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_debug(action)


def _add_data_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a location of the checkpoint's data set (e.g. source=PATH, cache_dir=DIR); a checkpoint "
                    "never names the files or folders prime reads or writes (repeatable)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)

    def run() -> int:  # building the parser loads the invoked plugin command, which may fail: one line too
        args = build_parser(argv).parse_args(argv)
        from ..plugin.default import lazy_registry_for

        with lazy_registry_for(args.command):  # sample, eval, idle-steps: plugins only for the names used
            return args.func(args)

    return cliargs.run_command("prime", run, argparse.Namespace(debug="--debug" in argv))
