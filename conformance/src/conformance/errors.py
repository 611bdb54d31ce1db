"""What a check raises. `Failure` comes from inside a check; `ConformanceError` is what the suite reports,
with the component, its distribution, the check and the minimal counterexample in one readable message."""

from __future__ import annotations


class Failure(AssertionError):
    """A broken rule, raised by a check. ``counterexample`` is the (shrunk) input that shows it."""

    def __init__(self, reason: str, counterexample: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.counterexample = counterexample


class SkipCheck(Exception):
    """The component does not declare the capability a check needs (e.g. a sampler without ``seeds=``)."""


class ConformanceError(AssertionError):
    """A component failed a check. The message names kind, component, distribution, check and counterexample."""

    def __init__(self, kind: str, name: str, distribution: str, version: str, check: str, reason: str,
                 counterexample: str | None = None, under_test: str | None = None):
        self.kind, self.name, self.distribution, self.version = kind, name, distribution, version
        self.check, self.reason, self.counterexample = check, reason, counterexample
        self.under_test = under_test
        msg = f"{kind} {name!r} from {distribution} {version} failed {check}: {reason}"
        if under_test:  # a built-in run with a plugin's maps / schedules: name what is under test first
            msg = f"{under_test}, run through {msg}"
        if counterexample:
            msg += f"\n    minimal counterexample: {counterexample}"
        super().__init__(msg)
