"""``prime idle-steps``: the expected number of idle steps of the T-step sampler for L tokens of ℓ sub-tokens
under a schedule α_t (DESIGN §2.6), next to a simulation of it."""

from __future__ import annotations

import argparse
import json

from .. import cliargs
from ..errors import PrimeError
from .options import add_json, add_seed, add_steps, registry

#: The simulation draws L·ℓ reveal steps per run; beyond this it would take minutes and gigabytes.
MAX_IDLE_UNITS = 2**24


def add_parser(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("idle-steps", help="expected and simulated idle steps of the T-step sampler")
    sp.add_argument("--length", type=cliargs.count("--length"), required=True, help="L, tokens per sequence")
    sp.add_argument("--ell", type=cliargs.count("--ell", 1, 64), required=True, help="ℓ, sub-tokens per token")
    add_steps(sp, "T, sampling steps", required=True)
    sp.add_argument("--schedule", default="linear")
    sp.add_argument("--runs", type=cliargs.count("--runs", 1, 100_000), default=100,
                    help="simulated sampling runs, 1 … 100000")
    add_seed(sp)
    add_json(sp)
    sp.set_defaults(func=cmd_idle_steps)


def cmd_idle_steps(args) -> int:
    from ..diffusion.idle import idle_report

    if args.length * args.ell > MAX_IDLE_UNITS:  # the simulation draws L·ℓ reveal steps per run
        raise PrimeError(f"--length × --ell = {args.length * args.ell} sub-tokens is more than the simulation "
                         f"handles ({MAX_IDLE_UNITS}); use a smaller L or ℓ")
    schedule = registry().build("schedule", args.schedule)
    rep = idle_report(schedule, args.schedule, args.length, args.ell, args.steps, args.runs, args.seed)
    if args.json:
        print(json.dumps(rep.to_json()))
        return 0
    print(f"L={rep.length} ℓ={rep.ell} T={rep.steps} schedule={rep.schedule} (N = L·ℓ = {rep.length * rep.ell})")
    print(f"expected idle steps  {rep.expected_idle_steps:10.3f}   ratio {100 * rep.expected_idle_ratio:6.2f} %")
    print(f"simulated idle steps {rep.simulated_idle_steps:10.3f}   ratio {100 * rep.simulated_idle_ratio:6.2f} %"
          f"   (± {rep.simulated_stderr:.3f}, {rep.runs} runs)")
    return 0
