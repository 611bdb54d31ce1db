"""The suites, one module per component kind (exporters.py also holds the exporter kind); importing this package
registers every check."""

from . import backbones, exporters, heads, likelihood, maps, samplers, schedules  # noqa: F401
