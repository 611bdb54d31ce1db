"""The catalogue of checks (internal): `check(kind)` registers a check function for one component kind in
`CHECKS`. The suites under `conformance.checks` fill it at import; `conformance.cases` pairs it with components.
Kept apart from `cases` so that the suites and the case builder import it without importing each other."""

from __future__ import annotations

from typing import Callable

import attrs


@attrs.frozen
class CheckSpec:
    kind: str
    name: str
    func: Callable[["Subject"], None]

    @property
    def doc(self) -> str:
        return (self.func.__doc__ or "").strip().splitlines()[0] if self.func.__doc__ else ""


#: kind → checks, filled by the modules of `conformance.checks` at import
CHECKS: dict[str, list[CheckSpec]] = {}


def check(kind: str):
    """Register a check function for one component kind."""

    def deco(func):
        CHECKS.setdefault(kind, []).append(CheckSpec(kind, func.__name__, func))
        return func

    return deco
