"""Error types. A `PrimeError` is a user error: the CLI prints its one-line message and exits with code 2."""

from __future__ import annotations


class PrimeError(Exception):
    """Bad input from a user: the message says what was wrong and what is allowed."""


class ConfigError(PrimeError, ValueError):
    """An invalid configuration value or override."""


class CheckpointError(PrimeError):
    """A missing, truncated, corrupt or foreign checkpoint."""


class RegistryError(PrimeError):
    """A registry problem: unknown component name, duplicate name, wrong kind.

    Carries the culprit: ``kind``, ``name`` and the ``distribution`` that provided it.
    """

    def __init__(self, message: str, *, kind: str | None = None, name: str | None = None,
                 distribution: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.distribution = distribution


class UnknownComponentError(RegistryError):
    """No component of that kind is registered under that name (e.g. a checkpoint needs a plugin that is not
    installed); the message lists what is available and, when known, what to install."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty): what a one-line
    error quotes of a failure raised by another library."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_count(name: str, value) -> None:
    """``value`` must be a whole number ≥ 1 (booleans and floats are refused, never truncated)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number ≥ 1, got {value!r}")


class NonFiniteError(PrimeError):
    """A model produced NaN or infinite log-probabilities (diverged or damaged weights): eval and sampling stop
    with one line and exit code 2, instead of printing "≤ nan" or drawing invalid token ids."""


def deprecated(old: str, new: str) -> None:
    """Say that ``old`` (an option, a config key, a name) is deprecated in favour of ``new``: one line on stderr
    starting with "warning:" (what a CLI user sees) and a `DeprecationWarning` (what code and tests see)."""
    import sys
    import warnings

    message = f"{old} is deprecated: use {new} (the old name is accepted until the next minor release)"
    print(f"warning: {message}", file=sys.stderr)
    warnings.warn(message, DeprecationWarning, stacklevel=3)
