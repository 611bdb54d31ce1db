"""What several ``prime`` commands share, each defined once: their common options (``--config``/``--set`` and the
run flags of train and run; the checkpoint argument, ``--steps``, ``--seed``, ``--weights``, ``--batch-size``,
``--data-option``, ``--json``, ``--quiet``), the parser of the KEY=VALUE flags, and the registry accessor.

Internal (the public argument helpers are `prime_core.cliargs`). Importing this module imports no torch.
"""

from __future__ import annotations

import argparse

from .. import cliargs
from ..errors import PrimeError


def registry():
    """The process's default registry (`prime_core.plugin.default`), assembled on first use, not at import:
    ``prime --help`` never loads the components."""
    from ..plugin.default import get_registry

    return get_registry()


# ------------------------------------------------------------------------------------------------ option adders
def add_run_options(sp: argparse.ArgumentParser, out: str, what: str) -> None:
    """The options `prime train` and `prime run` share: --config, --set, --out, --resume, --force, --quiet,
    --device."""
    sp.add_argument("--config", help="TOML file (path or fsspec URL) or a shipped config's name (prime config list)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set model.ell=4 (repeatable)")
    sp.add_argument("--out", default=out, help="output folder (checkpoint, metrics, plots, report)")
    sp.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")
    sp.add_argument("--force", action="store_true", help="start over even if a checkpoint exists")
    add_quiet(sp, "no progress bar")
    cliargs.add_device(sp, what=f"{what} (sets train.options.device; default: the config's, else auto)")


def add_checkpoint(sp: argparse.ArgumentParser) -> None:
    """The checkpoint a command reads (path or fsspec URL; `prime_core.runs.build.load_model`)."""
    sp.add_argument("checkpoint")


def add_steps(sp: argparse.ArgumentParser, what: str, required: bool = False) -> None:
    """--steps T, the number of sampling steps (1 … MAX_STEPS); ``what`` says what T is for in this command."""
    sp.add_argument("--steps", type=cliargs.steps, required=required, help=f"{what}, 1 … {cliargs.MAX_STEPS}")


def add_seed(sp: argparse.ArgumentParser) -> None:
    """--seed, default 0: every random draw of the command derives from it."""
    sp.add_argument("--seed", type=cliargs.seed, default=0, help=f"0 … {cliargs.MAX_SEED}")


def add_weights(sp: argparse.ArgumentParser) -> None:
    """--weights model|ema: which of the checkpoint's weights to load."""
    sp.add_argument("--weights", default="model", choices=["model", "ema"])


def add_batch_size(sp: argparse.ArgumentParser, what: str, most: int = cliargs.MAX_COUNT) -> None:
    """--batch-size B (1 … ``most``): rows or sequences per forward pass; ``what`` says what the default is."""
    sp.add_argument("--batch-size", type=cliargs.count("--batch-size", 1, most), help=what)


def add_data_option(sp: argparse.ArgumentParser) -> None:
    """--data-option KEY=VALUE: where the checkpoint's data set lives here (parsed by `parse_options`)."""
    sp.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a location of the checkpoint's data set (e.g. source=PATH, cache_dir=DIR); a checkpoint "
                    "never names the files or folders prime reads or writes (repeatable)")


def add_json(sp: argparse.ArgumentParser) -> None:
    """--json: the command's result as one JSON document on stdout instead of text."""
    sp.add_argument("--json", action="store_true")


def add_quiet(sp: argparse.ArgumentParser, what: str | None = None) -> None:
    """--quiet: no progress bar and no notes on stderr."""
    sp.add_argument("--quiet", action="store_true", help=what)


# ------------------------------------------------------------------------------------------------ KEY=VALUE
#: An example of each KEY=VALUE flag, for the message that refuses a malformed one.
_OPTION_EXAMPLES = {"--option": "--option warp=1.5", "--data-option": "--data-option source=PATH"}


def parse_options(items: list[str], flag: str = "--option") -> dict:
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
