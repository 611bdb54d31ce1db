"""Run a property over a hypothesis strategy and turn its shrunk failure into a `Failure` with a counterexample."""

from __future__ import annotations

import os
from typing import Any, Callable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .errors import Failure

#: examples per property; raise it with PRIME_CONFORMANCE_EXAMPLES for a longer hunt
MAX_EXAMPLES = int(os.environ.get("PRIME_CONFORMANCE_EXAMPLES", "30"))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return repr(value)


def falsify(prop: Callable[[Any], None], strategy: st.SearchStrategy, *, max_examples: int | None = None) -> None:
    """Check ``prop(example)`` for examples of ``strategy``; deterministic (derandomized, no database).

    A `Failure` (or AssertionError) is shrunk by hypothesis to a minimal example and re-raised as a `Failure`
    whose ``counterexample`` is that example. Other exceptions propagate with the example attached."""
    seen: list[tuple[Any, BaseException]] = []

    @settings(max_examples=max_examples or MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False, print_blob=False,
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(strategy)
    def run(example):
        try:
            prop(example)
        except BaseException as exc:
            seen.append((example, exc))
            raise

    try:
        run()
    except BaseException as exc:
        if not seen:
            raise
        example, last = seen[-1]  # hypothesis replays the minimal example last
        reason = last.reason if isinstance(last, Failure) else f"{type(last).__name__}: {last}".splitlines()[0]
        raise Failure(reason, counterexample=_fmt(example)) from exc
