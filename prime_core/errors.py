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
