"""The suites, one module per component kind; importing this package registers every check."""

from . import backbones, exporters, heads, likelihood, maps, samplers, schedules  # noqa: F401
