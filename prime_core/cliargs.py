"""Command-line plumbing shared by ``prime`` and every plugin's program: argument types that check each number
where it is parsed, a parser whose errors are one line, and `run_command`, which turns exceptions into the CLI's
error promise (one line on stderr; exit 2 for bad input, 1 for a bug; ``--debug`` / ``PRIME_DEBUG=1`` adds the
traceback). Public API: plugins use it for their own commands.

Each factory returns an argparse ``type=`` callable that turns the text into a value or raises
``argparse.ArgumentTypeError`` with a message that says what was wrong and what is allowed. Nothing is ever
replaced by a default silently: an option left out is ``None`` and the command uses the checkpoint's or the
config's value; an option given is used as given, or refused.

Caps keep one typo from allocating gigabytes before anything else happens (``--steps 1000000000`` would build
a float64 time grid of 8 GB); they are far above what the paper's setups use (T ≤ 1024 steps, 50k samples).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from typing import Callable

from .errors import PrimeError, first_line

EXIT_USAGE = 2
EXIT_INTERNAL = 1

#: Upper limits of the command line's counts (see the module docstring).
MAX_STEPS = 1_000_000
#: Row keys are seed·2³² + i (prime_core.sampling.ancestral.row_seeds): unique for any row count; this caps a run's size.
MAX_SAMPLES = 2**20
MAX_MC = 100_000
MAX_SEED = 2**32 - 1
MAX_COUNT = 2**31 - 1

_INT = re.compile(r"[+-]?\d+")


def count(label: str, lo: int = 1, hi: int = MAX_COUNT):
    """An integer in [lo, hi]; "1e9", "2.5", "true" and out-of-range values are refused. argparse puts
    "argument <label>:" before the messages."""

    def parse(text: str) -> int:
        if not _INT.fullmatch(text.strip()):
            raise argparse.ArgumentTypeError(f"must be a whole number in [{lo}, {hi}], got {text!r}")
        value = int(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must lie in [{lo}, {hi}], got {value}")
        return value

    parse.__name__ = label  # argparse names the type in its own messages
    return parse


def real(label: str, *, lo: float, hi: float, lo_open: bool = True):
    """A finite float in (lo, hi] (or [lo, hi] with ``lo_open=False``); nan and ±inf are refused."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        inside = (value > lo if lo_open else value >= lo) and value <= hi
        if not math.isfinite(value) or not inside:
            interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise argparse.ArgumentTypeError(f"must be a finite number in {interval}, got {text!r}")
        return value

    parse.__name__ = label
    return parse


seed = count("--seed", 0, MAX_SEED)
steps = count("--steps", 1, MAX_STEPS)
samples = count("--num-samples", 1, MAX_SAMPLES)
temperature = real("--temperature", lo=0.0, hi=100.0)
top_p = real("--top-p", lo=0.0, hi=1.0)


def device(text: str) -> str:
    """A device spec (``auto``, ``cpu``, ``cuda``, ``cuda:N``; `prime_core.device`) that this machine has:
    ``--device cuda`` without CUDA is refused here, as one line. Returns the spec in lower case (a command
    resolves it with `prime_core.device.resolve_device`, under torchrun per local rank)."""
    from .device import resolve_device

    try:
        resolve_device(text, what="--device")
    except PrimeError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--device ")) from None
    return text.strip().lower()


device.__name__ = "--device"


def add_device(parser: argparse.ArgumentParser, default: str | None = None, what: str = "runs") -> None:
    """The shared ``--device`` option (`device`); ``default`` None means the command's own default."""
    from .device import DEVICE_HELP

    parser.add_argument("--device", type=device, default=default, metavar="DEVICE",
                        help=f"where it {what}: {DEVICE_HELP}")


def parse_fixed(text: str, length: int, num_classes: int) -> list[tuple[int, int]]:
    """``"i:tok,i:tok"`` → [(position, token)] with 0 ≤ position < L and 0 ≤ token < C, each position once."""
    pairs: dict[int, int] = {}
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) != 2 or not all(_INT.fullmatch(f.strip()) for f in fields):
            raise ValueError(f"--fix expects position:token pairs like 0:5,1:7, got {part!r}")
        pos, tok = (int(f) for f in fields)
        if not 0 <= pos < length:
            raise ValueError(f"--fix position {pos} is outside [0, {length - 1}] (L = {length})")
        if not 0 <= tok < num_classes:
            raise ValueError(f"--fix token {tok} at position {pos} is outside [0, {num_classes - 1}] "
                             f"(C = {num_classes})")
        if pos in pairs:
            raise ValueError(f"--fix names position {pos} twice")
        pairs[pos] = tok
    return sorted(pairs.items())


def given(value, default):
    """The option as given, or ``default`` when it was left out (None) — never when it is 0 or empty: an option
    given is used as given, or refused."""
    return default if value is None else value


# ------------------------------------------------------------------------------------------------ errors
class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error promise: one line ``PROG: error: …`` and exit 2 (argparse's own error()
    prints the whole usage first). Subparsers inherit the class."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{program(self.prog)}: error: {message} (see {self.prog} --help)\n")


def program(prog: str) -> str:
    """The name errors start with: "prime" for "prime sample", "export.onnx" for "python -m export.onnx"."""
    words = prog.split()
    return words[2] if words[:2] == ["python", "-m"] and len(words) > 2 else words[0]


DEBUG_HELP = "show the traceback of an error (also PRIME_DEBUG=1)"

#: Exceptions that mean bad input or a missing resource, not a bug: one line, exit 2.
USER_ERRORS = (PrimeError, ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
               FileExistsError, ImportError, MemoryError)


def error_line(prog: str, exc: BaseException) -> tuple[int, str]:
    """(exit code, the one line printed) for an exception that reached the top of a command."""
    first = first_line(exc)
    if isinstance(exc, MemoryError):
        return EXIT_USAGE, f"{prog}: error: not enough memory for this request ({first})"
    if isinstance(exc, ImportError) and not isinstance(exc, PrimeError):
        return EXIT_USAGE, f"{prog}: error: a required package is missing: {first}"
    if isinstance(exc, USER_ERRORS):
        return EXIT_USAGE, f"{prog}: error: {first}"
    return EXIT_INTERNAL, (f"{prog}: internal error: {type(exc).__name__}: {first} (a bug: please report it; "
                           f"--debug or PRIME_DEBUG=1 shows the traceback)")


def debug_enabled(args=None) -> bool:
    """--debug on the command line, or PRIME_DEBUG set to anything but "" / "0"."""
    return bool(getattr(args, "debug", False)) or os.environ.get("PRIME_DEBUG", "0") not in ("", "0")


def run_command(prog: str, body: Callable[[], int | None], args=None) -> int:
    """Run ``body()`` and return its exit code (an int it returns, else 0); any exception becomes `error_line`'s
    one line on stderr."""
    try:
        code = body()
        return code if isinstance(code, int) and not isinstance(code, bool) else 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 — the one place that turns exceptions into exit codes
        code, line = error_line(prog, exc)
        if debug_enabled(args):
            import traceback

            traceback.print_exc()
        print(line, file=sys.stderr)
        return code


def add_renamed_option(parser: argparse.ArgumentParser, new: str, old: str, **kwargs) -> None:
    """``new`` (e.g. ``--draw-dtype``) with its deprecated spelling ``old`` still accepted: using ``old`` prints
    one "warning:" line naming ``new`` (`prime_core.errors.deprecated`). ``kwargs`` as for ``add_argument``."""
    from .errors import deprecated

    class _Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            if option_string == old:
                deprecated(old, new)
            setattr(namespace, self.dest, values)

    parser.add_argument(new, old, action=_Renamed, dest=new.lstrip("-").replace("-", "_"), **kwargs)


#: the token draw's precision, shared by prime sample and the exporters (formerly --gumbel-dtype)
DRAW_DTYPES = ("float32", "float64")
