"""Validators of config fields (attrs ``validator=``), shared by the core's config records and by a plugin's own
option records (public as `prime_core.api.OptionChecks`): each refuses a bad value in one line that names the
field as users write it (``train.options.ema``) and what is allowed."""

from __future__ import annotations

from typing import Any

from ..device import parse_device_spec
from ..errors import ConfigError, PrimeError


def check_one_of(where: str, choices: tuple, value: Any) -> None:
    if value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(str, choices))}, got {value!r}")


def check_flag(where: str, value: Any) -> None:
    """true or false (TOML booleans), not 0/1 or "yes"."""
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")


class OptionChecks:
    """attrs validators for the fields of an options record under ``prefix`` (e.g. ``"train.options"``)::

        checks = OptionChecks("train.options")

        @attrs.frozen
        class MyOptions:
            ema: float = attrs.field(default=0.999, validator=checks.unit_interval)
    """

    def __init__(self, prefix: str):
        self.prefix = prefix

    def where(self, attribute) -> str:
        return f"{self.prefix}.{attribute.name}"

    def one_of(self, *choices):
        return lambda inst, attribute, value: check_one_of(self.where(attribute), choices, value)

    def flag(self, inst, attribute, value) -> None:
        check_flag(self.where(attribute), value)

    def int_at_least(self, lo: int):
        def check(inst, attribute, value):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ConfigError(f"{self.where(attribute)} must be an integer ≥ {lo}, got {value!r}")
        return check

    def unit_interval(self, inst, attribute, value) -> None:
        """A number in [0, 1) (0 turns the feature off)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ConfigError(f"{self.where(attribute)} must be a number in [0, 1) (0 turns it off), got {value!r}")

    def device(self, inst, attribute, value) -> None:
        """The device vocabulary every prime command shares (`prime_core.api.parse_device_spec`)."""
        try:
            parse_device_spec(value, what=self.where(attribute))
        except PrimeError as exc:
            raise ConfigError(str(exc)) from None
