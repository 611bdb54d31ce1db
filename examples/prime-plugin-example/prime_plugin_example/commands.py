"""``prime example-map --classes C --ell ℓ``: print the permuted base-b code of every token, an example of a
plugin command (the ``register_commands`` hook; declared in the ``prime.commands`` entry-point group)."""

from __future__ import annotations

from prime_core import hookimpl
from prime_core.cliargs import count, seed


def run(args) -> int:
    import torch  # imported when the command runs, never for `prime --help`

    from .maps import PermutedBaseBMap

    f = PermutedBaseBMap(args.classes, args.ell, seed=args.seed)
    digits = f.encode(torch.arange(args.classes))
    print(f"C={f.num_classes} ℓ={f.ell} b={f.base}  token → digits (most significant first)")
    for token, row in enumerate(digits.tolist()):
        print(f"{token:>6} → {' '.join(map(str, row))}")
    return 0


@hookimpl
def register_commands(commands):
    sp = commands.add_parser("example-map", help="print the permuted base-b code of every token (example plugin)")
    sp.add_argument("--classes", type=count("--classes", 2, 4096), required=True, help="C, 2 … 4096")
    sp.add_argument("--ell", type=count("--ell", 1, 16), required=True, help="ℓ, 1 … 16")
    sp.add_argument("--seed", type=seed, default=0, help="seed of the permutation π")
    sp.set_defaults(func=run)
