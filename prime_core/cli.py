"""The ``prime`` command line: plugins, train, sample, eval, idle-steps, conformance.

User errors (bad config, unknown component, bad checkpoint, ids out of range) print one line to stderr and exit
with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import cliargs
from .errors import PrimeError

EXIT_USAGE = 2
EXIT_INTERNAL = 1
MAX_IDLE_UNITS = 2**24


def _registry():
    from .registry import get_registry

    return get_registry()


# ------------------------------------------------------------------------------------------------ plugins
def cmd_plugins(args) -> int:
    reg = _registry()
    rows = [info.to_json() for info in reg.plugins.values() if args.all or not info.builtin]
    if args.hook:
        rows = [r for r in rows if args.hook in r["hooks"]]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no plugins installed (use --all to include the built-ins)")
    for r in rows:
        status = f"  ERROR: {r['error']}" if r["error"] else ""
        print(f"{r['name']}  ({r['distribution']} {r['version']}){status}")
        for kind, names in sorted(r["components"].items()):
            print(f"    {kind:<10} {', '.join(names)}")
    return 0


# ------------------------------------------------------------------------------------------------ train
def cmd_train(args) -> int:
    from .config import load_config

    config = load_config(args.config, args.set)
    trainer = _registry().build("trainer", config.train.trainer)
    url = trainer.fit(config, out_dir=args.out, resume=args.resume, progress=not args.quiet, force=args.force)
    print(f"checkpoint: {url}")
    return 0


def cmd_run(args) -> int:
    from .config import load_config
    from .pipeline import run_pipeline

    run_pipeline(load_config(args.config, args.set), args.out, resume=args.resume, force=args.force,
                 progress=not args.quiet)
    return 0


# ------------------------------------------------------------------------------------------------ sample
def _parse_fixed(text: str | None, length: int, num_classes: int):
    """"i:tok,i:tok" → fixed-token row [L] with −1 elsewhere (positions < L, tokens < C: `cliargs.parse_fixed`)."""
    import torch

    from .cliargs import parse_fixed

    if text is None:
        return None
    try:
        pairs = parse_fixed(text, length, num_classes)
    except ValueError as exc:
        raise PrimeError(str(exc)) from None
    row = torch.full((length,), -1, dtype=torch.long)
    for pos, tok in pairs:
        row[pos] = tok
    return row


def _given(value, default):
    """The option as given, or the stored default when it was left out (never when it is 0 or empty)."""
    return default if value is None else value


def _parse_options(items: list[str]) -> dict:
    """["key=value", …] (values in TOML syntax, bare words as strings) → sampler constructor options."""
    from .config import parse_override

    out = {}
    for text in items or []:
        keys, value = parse_override(f"option.{text}")
        out[".".join(keys[1:])] = value
    return out


def cmd_sample(args) -> int:
    import torch

    from .build import load_model

    model, config, ckpt = load_model(args.checkpoint, weights=args.weights)
    s = config.sample
    name = _given(args.sampler, s.sampler)
    options = {**(s.options if name == s.sampler else {}), **_parse_options(args.option)}
    sampler = _registry().build("sampler", name, **options)
    if args.step_model is not None and args.runtime == "torch":
        raise PrimeError("--step-model is the exported step of --runtime onnxruntime or tensorrt; it does nothing "
                         "with --runtime torch")
    if args.trajectory and not args.out:
        raise PrimeError("--trajectory draws trajectory.png into the --out folder: pass --out DIR")
    if args.runtime != "torch":  # the exported step (prime-export), imported only when asked for
        if name != "ancestral" or options:
            raise PrimeError(f"--runtime {args.runtime} drives the ancestral sampler without options only, "
                             f"not {name!r} {options or ''}".rstrip())
        try:
            from export.runner import runtime_sampler
        except ImportError as exc:
            raise PrimeError(f"--runtime {args.runtime} needs the prime-export distribution "
                             f"(pip install 'prime-export[onnx]'): {exc}") from None
        sampler = runtime_sampler(args.runtime, model, config, args.checkpoint, step_model=args.step_model,
                                  gumbel_dtype=args.gumbel_dtype, ckpt_meta=ckpt.meta, top_p=_given(args.top_p, s.top_p))
    gumbel_dtype = _given(args.gumbel_dtype, s.gumbel_dtype)
    result = sampler.sample(
        model, _given(args.num_samples, s.num_samples), steps=_given(args.steps, s.steps), seed=args.seed,
        temperature=_given(args.temperature, s.temperature), top_p=_given(args.top_p, s.top_p),
        gumbel_dtype=getattr(torch, gumbel_dtype), cache=not args.no_cache,
        fixed_tokens=_parse_fixed(args.fix, model.length, model.num_classes), return_trajectory=args.trajectory,
        progress=not args.quiet)
    report = {"steps": result.steps, "nfe_mean": float(result.nfe.float().mean()),
              "idle_steps_mean": float(result.idle_steps.float().mean()),
              "idle_ratio": float(result.idle_steps.float().mean() / result.steps),
              "forward_calls": result.forward_calls, "gumbel_dtype": gumbel_dtype,
              "tokens": result.tokens.tolist()}
    dataset = _sample_dataset(config, ckpt.meta.get("data"), required=bool(args.out))
    report["decoded"] = (dataset.decode_samples(result.tokens) if dataset is not None
                         else [" ".join(map(str, row.tolist())) for row in result.tokens])
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "samples.json"), "w", encoding="utf-8") as fh:
            json.dump(report, fh)
        png = dataset.render(result.tokens, os.path.join(args.out, "samples.png"))
        if png:
            report["png"] = png
        if args.trajectory:
            traj = dataset.render_trajectory(result.trajectory, model.map, os.path.join(args.out, "trajectory.png"))
            if traj:
                report["trajectory_png"] = traj
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{len(result.tokens)} samples, {result.steps} steps: NFE {report['nfe_mean']:.1f}/sequence, "
          f"idle steps {report['idle_steps_mean']:.1f} ({100 * report['idle_ratio']:.1f} %)")
    for text in report["decoded"][: args.show]:
        print("  " + text)
    if report.get("png"):
        print(f"wrote {report['png']}")
    if report.get("trajectory_png"):
        print(f"wrote {report['trajectory_png']}")
    return 0


def _sample_dataset(config, data_meta, *, required: bool):
    """The checkpoint's dataset, to decode (a stored tokenizer) and render samples. Only --out needs it; without
    it a data set that cannot be built here (e.g. an image folder on another machine) leaves samples as ids."""
    from .build import build_dataset

    try:
        return build_dataset(config, data_meta=data_meta)
    except (PrimeError, FileNotFoundError) as exc:
        if required:
            raise
        print(f"prime: note: samples shown as token ids ({str(exc).splitlines()[0]})", file=sys.stderr)
        return None


# ------------------------------------------------------------------------------------------------ eval
def cmd_eval(args) -> int:
    from .evaluate import evaluate_report, format_report

    report = evaluate_report(args.checkpoint, split=args.split, mc_samples=args.mc, steps=args.steps,
                             max_sequences=args.max_sequences, weights=args.weights, seed=args.seed)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


# ------------------------------------------------------------------------------------------------ idle-steps
def cmd_idle_steps(args) -> int:
    from .idle import idle_report

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


# ------------------------------------------------------------------------------------------------ conformance
def cmd_conformance(args) -> int:
    """Run the prime-conformance suites (pytest) on one plugin's components, or on everything installed."""
    try:
        from conformance.runner import run
    except ImportError:
        raise PrimeError("prime conformance needs the prime-conformance distribution: pip install "
                         "prime-conformance (in this repository: pip install -e conformance)") from None
    return run(args)


# ------------------------------------------------------------------------------------------------ parser
class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error promise: one line ``prime: error: …`` and exit 2 (argparse's own error()
    prints the whole usage first)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"prime: error: {message} (see {self.prog} --help)\n")


_DEBUG_HELP = "show the traceback of an error (also PRIME_DEBUG=1)"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="prime", description="Partial-masking discrete diffusion (MDM-Prime).")
    p.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("plugins", help="list installed plugins and their components")
    sp.add_argument("--all", action="store_true", help="include the core's built-ins")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--hook", help="only plugins implementing this hook, e.g. register_schedules")
    sp.set_defaults(func=cmd_plugins)

    sp = sub.add_parser("train", help="train a model from a TOML config")
    sp.add_argument("--config", help="TOML file (path or fsspec URL) or a shipped config's name (prime config list)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set model.ell=4 (repeatable)")
    sp.add_argument("--out", default="runs/default", help="output folder (checkpoint, metrics, plots)")
    sp.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")
    sp.add_argument("--force", action="store_true", help="start over even if a checkpoint exists")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("run", help="the main job: train, sample, evaluate and write a report")
    sp.add_argument("--config", help="TOML file (path or fsspec URL) or a shipped config's name (prime config list)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sp.add_argument("--out", default="runs/main", help="output folder")
    sp.add_argument("--resume", action="store_true")
    sp.add_argument("--force", action="store_true")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("sample", help="draw samples from a checkpoint")
    sp.add_argument("checkpoint")
    sp.add_argument("-n", "--num-samples", type=cliargs.samples, help=f"1 … {cliargs.MAX_SAMPLES}")
    sp.add_argument("--steps", type=cliargs.steps, help=f"T, 1 … {cliargs.MAX_STEPS}")
    sp.add_argument("--seed", type=cliargs.seed, default=0, help=f"0 … {cliargs.MAX_SEED}")
    sp.add_argument("--sampler")
    sp.add_argument("--temperature", type=cliargs.temperature, help="τ in (0, 100]")
    sp.add_argument("--top-p", type=cliargs.top_p, help="nucleus mass in (0, 1]")
    sp.add_argument("--gumbel-dtype", choices=["float32", "float64"])
    sp.add_argument("--no-cache", action="store_true", help="evaluate every row at every step (baseline)")
    sp.add_argument("--fix", help="prefix / infill constraints as position:token pairs, e.g. 0:3,1:7")
    sp.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="sampler constructor option (TOML value), e.g. --option warp=1.5 (repeatable)")
    sp.add_argument("--trajectory", action="store_true",
                    help="with --out: also draw the denoising trajectory (trajectory.png) where the data set can")
    sp.add_argument("--weights", default="model", choices=["model", "ema"])
    sp.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime", "tensorrt"],
                    help="run each step eagerly (torch) or as the exported step graph (prime-export); same tokens")
    sp.add_argument("--step-model", help="exported step for --runtime (.onnx, or a TensorRT .engine); "
                    "onnxruntime exports one on the fly when omitted")
    sp.add_argument("--out", help="folder for samples.json (and a PNG where the data set draws one)")
    sp.add_argument("--show", type=cliargs.count("--show", 0), default=8, help="samples to print")
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
    sp.add_argument("--weights", default="model", choices=["model", "ema"])
    sp.add_argument("--seed", type=cliargs.seed, default=0, help=f"0 … {cliargs.MAX_SEED}")
    sp.add_argument("--json", action="store_true")
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

    from .shipped_configs import add_config_parser  # prime config list / show NAME

    add_config_parser(sub)

    sp = sub.add_parser("conformance", help="run the conformance suites on a plugin's components (pytest)")
    add_conformance_arguments(sp)
    sp.set_defaults(func=cmd_conformance)
    for sp in sub.choices.values():  # `prime CMD … --debug` too; SUPPRESS keeps a `prime --debug CMD` intact
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return p


def add_conformance_arguments(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of `prime conformance` (also those of prime-conformance's own ``python -m conformance``)."""
    sp.add_argument("--plugin", action="append", default=[], metavar="NAME",
                    help="entry-point or distribution name (repeatable); default: every installed component")
    sp.add_argument("--kind", action="append", default=[], help="only this component kind (repeatable)")
    sp.add_argument("--xfail", action="append", default=[], metavar="CHECK=REASON",
                    help="declare an expected failure, e.g. check_weights_finite='w is infinite at t=1'")
    sp.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    return sp


#: Exceptions that mean bad input or a missing resource, not a bug: one line, exit 2.
USER_ERRORS = (PrimeError, ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
               FileExistsError, ImportError, MemoryError)


def _error_line(exc: BaseException) -> tuple[int, str]:
    """(exit code, the one line printed) for an exception that reached the top of a command."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, MemoryError):
        return EXIT_USAGE, f"prime: error: not enough memory for this request ({first})"
    if isinstance(exc, ImportError) and not isinstance(exc, PrimeError):
        return EXIT_USAGE, f"prime: error: a required package is missing: {first}"
    if isinstance(exc, USER_ERRORS):
        return EXIT_USAGE, f"prime: error: {first}"
    return EXIT_INTERNAL, (f"prime: internal error: {type(exc).__name__}: {first} (a bug: please report it; "
                           f"--debug or PRIME_DEBUG=1 shows the traceback)")


def debug_enabled(args=None) -> bool:
    """--debug on the command line, or PRIME_DEBUG set to anything but "" / "0"."""
    return bool(getattr(args, "debug", False)) or os.environ.get("PRIME_DEBUG", "0") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("prime: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 — the one place that turns exceptions into exit codes
        code, line = _error_line(exc)
        if debug_enabled(args):
            import traceback

            traceback.print_exc()
        print(line, file=sys.stderr)
        return code
